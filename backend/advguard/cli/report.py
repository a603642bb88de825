"""``advguard report``: one self-contained HTML file to hand over with a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from advguard.cli.common import (
    CommandError,
    Subcommands,
    add_robustness_options,
    load_split,
    progress_bar,
)
from advguard.cli.robustness import check_robustness_options
from advguard.detection import load_adversarial_set
from advguard.guard import Guard
from advguard.jobs.steps import (
    REPORT_ATTACKS,
    REPORT_DEFENSES,
    REPORT_FILE,
    ReportInputs,
    measure_report,
)
from advguard.models import load_classifier


def command_report(args: argparse.Namespace) -> None:
    check_robustness_options(args)
    if (args.guard is None) != (args.set is None):
        raise CommandError("--guard and --set go together: the detector and the set it trained on")
    model, spec = load_classifier(args.model)
    guard = None if args.guard is None else Guard.load(args.guard)
    if guard is not None and spec is not None and spec.class_names != guard.spec.class_names:
        raise CommandError(
            f"the guard's classes {guard.spec.class_names} differ from the model's "
            f"{spec.class_names}"
        )
    dataset = load_split(args.data, spec, args.seed, args.split).sample(args.limit, args.seed)
    inputs = ReportInputs(
        model=model,
        model_name=args.name or Path(args.model).resolve().name,
        dataset=dataset,
        dataset_name=f"{args.data} ({args.split})",
        seed=args.seed,
        detector=None if guard is None else guard.detector,
        detector_name=None if args.guard is None else Path(args.guard).resolve().name,
        adversarial=None if args.set is None else load_adversarial_set(args.set),
    )
    out = Path(args.out)
    with progress_bar("report", unit="img") as progress:
        report = measure_report(
            inputs, out, progress, attacks=args.attacks, epsilons=args.eps,
            l2_epsilons=args.l2_eps, defenses=args.defenses, adaptive_steps=args.adaptive_steps,
            batch_size=args.batch_size,
        )  # fmt: skip
    print(report.robustness.markdown())
    print(f"clean accuracy {report.clean.accuracy:.3f} on {len(dataset)} images")
    print(f"report: {out / REPORT_FILE} (self-contained: open it in a browser, print to PDF)")


def add_report(commands: Subcommands) -> None:
    """``report``."""
    report = commands.add_parser(
        "report",
        help="one self-contained HTML report for a model: clean accuracy, AutoAttack, "
        "per-attack robustness, defenses with and without BPDA, and a guard's detector",
    )
    report.add_argument("--model", required=True, help="model folder or TorchScript file")
    report.add_argument("--name", default=None, help="the model's name in the report")
    report.add_argument("--data", default="bundled")
    report.add_argument("--split", default="test")
    report.add_argument("--guard", default=None, help="guard folder: include its detector")
    report.add_argument("--set", default=None, help="the adversarial set the guard trained on")
    add_robustness_options(report, 200, attacks=REPORT_ATTACKS, defenses=REPORT_DEFENSES)
    report.add_argument("--adaptive-steps", type=int, default=50)
    report.add_argument("--seed", type=int, default=0)
    report.add_argument("--out", required=True, help="report folder (report.html and its parts)")
    report.set_defaults(handler=command_report)
