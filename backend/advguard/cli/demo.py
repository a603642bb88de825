"""``advguard demo``: the whole pipeline on one dataset, from the other groups' steps."""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

from advguard.cli.common import (
    Subcommands,
    add_guard_options,
    add_report_options,
    add_set_options,
    add_training_options,
)
from advguard.cli.detection import build_config, make_set, report, train_guard
from advguard.cli.models import train_and_report
from advguard.cli.robustness import adaptive_report, adversarially_train, robustness_report
from advguard.config import Settings
from advguard.defenses import PREPROCESSORS, AdversarialTrainConfig
from advguard.evaluation import DEMO_EPSILONS, ROBUSTNESS_ATTACKS, ROBUSTNESS_EPSILONS
from advguard.evaluation.adaptive import DEFAULT_STEPS as ADAPTIVE_STEPS


def command_demo(args: argparse.Namespace) -> None:
    """The pipeline's steps in turn, each as its own command runs it."""
    out = Path(args.out)
    started = time.perf_counter()
    trained, splits = train_and_report(args, out)
    model, spec = trained.model, trained.spec
    config = build_config(args, trained.folder)
    adversarial = make_set(model, splits, out / "adversarial-set", config)
    args.guard = out / "guard"
    guard, features = train_guard(model, spec, adversarial, args)
    report(guard, adversarial, out / "report", args, features)
    sample = splits["test"].sample(args.robustness_images, args.seed)
    robustness_report(
        model, sample, ROBUSTNESS_ATTACKS, ROBUSTNESS_EPSILONS, [], out / "report" / "robustness"
    )
    # Every preprocessing defense against PGD, through its true gradient and with BPDA.
    robustness_report(
        model, sample, ["pgd"], ROBUSTNESS_EPSILONS, list(PREPROCESSORS),
        out / "report" / "defenses",
    )  # fmt: skip
    if args.skip_slow:
        print("adversarial training and the adaptive attack skipped (--skip-slow)")
    else:
        robust = adversarially_train(
            copy.deepcopy(model),
            spec,
            splits,
            AdversarialTrainConfig(epochs=args.adversarial_epochs, seed=args.seed),
            out / "adversarial-training",
            start_name="standard",
            comparison_images=args.robustness_images,
            comparison_out=out / "report" / "adversarial-training",
        ).model
        adaptive_report(
            {"standard": model, "adversarially trained": robust},
            sample.sample(args.adaptive_images, args.seed),
            guard.detector,
            DEMO_EPSILONS,
            args.adaptive_steps,
            args.seed,
            out / "report" / "adaptive",
        )
    link_reports(out / "report")
    print(f"demo took {time.perf_counter() - started:.0f} s")


DEMO_REPORTS = {
    "robustness/robustness.md": "Accuracy under each attack over ε",
    "defenses/robustness.md": "Preprocessing defenses against PGD, plain and with BPDA",
    "adversarial-training/comparison.md": "Standard against adversarially trained (PGD-AT)",
    "adaptive/adaptive.md": "The guard under an attack that knows its detector",
}


def link_reports(report_dir: Path) -> None:
    """End the detection report with links to the demo's other reports that were written."""
    links = [
        f"- [{title}]({path})"
        for path, title in DEMO_REPORTS.items()
        if (report_dir / path).exists()
    ]
    with (report_dir / "report.md").open("a") as report_file:
        report_file.write("\n## Robustness and defenses\n\n" + "\n".join(links) + "\n")


def add_demo(commands: Subcommands, settings: Settings) -> None:
    """``demo``."""
    demo = commands.add_parser(
        "demo", help="the whole pipeline: classifier, adversarial set, detector, guard, report"
    )
    add_training_options(demo, settings)
    demo.add_argument("--out", default="advguard-out/demo", help="output folder")
    add_set_options(demo, fraction=0.3)
    add_guard_options(demo)
    add_report_options(demo)
    demo.add_argument(
        "--robustness-images",
        type=int,
        default=100,
        help="test images for the robustness curves and defense table (default: 100)",
    )
    demo.add_argument(
        "--skip-slow",
        action="store_true",
        help="skip adversarial training and the adaptive attack (the slow parts)",
    )
    demo.add_argument(
        "--adversarial-epochs",
        type=int,
        default=3,
        help="PGD-AT fine-tuning epochs of the standard model (default: 3)",
    )
    demo.add_argument(
        "--adaptive-images",
        type=int,
        default=50,
        help="test images attacked adaptively, per setting and budget (default: 50)",
    )
    demo.add_argument(
        "--adaptive-steps",
        type=int,
        default=ADAPTIVE_STEPS,
        help=f"steps of the adaptive attack (default: {ADAPTIVE_STEPS})",
    )
    demo.set_defaults(handler=command_demo)
