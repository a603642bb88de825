"""``advguard build-set``, ``train-detector`` and ``evaluate``: the adversarial set, the
detector and its report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from advguard.cli.common import (
    CommandError,
    Subcommands,
    add_guard_options,
    add_report_options,
    add_set_options,
    load_splits,
)
from advguard.data import ImageDataset
from advguard.detection import (
    AdversarialSet,
    BuildConfig,
    DetectorConfig,
    build_adversarial_set,
    default_attack_specs,
    export_zip,
    load_adversarial_set,
    train_detector,
)
from advguard.evaluation import (
    format_table,
    json_ready,
)
from advguard.evaluation.detection_report import (
    UNSEEN_ATTACKS,
    build_detection_report,
    check_unseen_attacks,
    robustness_from_set,
    write_detection_report,
)
from advguard.guard import Guard
from advguard.models import (
    ModelSpec,
    load_classifier,
    read_holdout_files,
)


def build_config(args: argparse.Namespace, holdout_files: list[str] | None) -> BuildConfig:
    """The builder's configuration; the detector learns on ``holdout_files`` when known."""
    try:
        specs = default_attack_specs(args.attacks, args.eps)
        return BuildConfig(
            specs=specs, fraction=args.fraction, seed=args.seed, holdout_files=holdout_files
        )
    except ValueError as error:
        raise CommandError(str(error)) from error


def make_set(
    model: torch.nn.Module,
    splits: dict[str, ImageDataset],
    out: Path,
    args: argparse.Namespace,
    holdout_files: list[str] | None,
) -> AdversarialSet:
    """Build the adversarial set into ``out`` and say what it holds (shared with demo)."""
    config = build_config(args, holdout_files)
    started = time.perf_counter()
    try:
        adversarial = build_adversarial_set(model, splits, out, config)
    except ValueError as error:  # held-out images missing from this dataset
        raise CommandError(str(error)) from error
    print(
        f"adversarial set: {len(adversarial)} images ({len(config.specs)} attack settings on "
        f"{config.fraction:.0%} of each split's images, plus clean images and controls) "
        f"in {time.perf_counter() - started:.0f} s → {out}; the detector learns on "
        f"{config.detector_images()}"
    )
    rows = robustness_from_set(adversarial)
    table = format_table(rows)
    print(table)
    (out / "robustness.json").write_text(
        json.dumps(json_ready([r.to_dict() for r in rows]), indent=2)
    )
    (out / "robustness.md").write_text("# Robustness (test split)\n\n" + table + "\n")
    return adversarial


def command_build_set(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    holdout_files = read_holdout_files(args.model)
    build_config(args, holdout_files)  # refuse bad attack names or budgets before loading data
    out = Path(args.out)
    make_set(model, load_splits(args.data, spec, args.seed), out, args, holdout_files)
    if args.zip:
        print(f"zip: {export_zip(out, out.with_suffix('.zip'))}")


def fit_guard(
    model: torch.nn.Module, spec: ModelSpec, adversarial: AdversarialSet, args: argparse.Namespace
) -> tuple[Guard, torch.Tensor]:
    """Train the detector, wrap it with the classifier and save the guard to ``args.guard``."""
    config = DetectorConfig(target_false_rejection=args.target_frr, seed=args.seed)
    started = time.perf_counter()
    detector, features = train_detector(model, adversarial, config)
    guard = Guard(model, spec, detector)
    guard.save(args.guard)
    print(
        f"detector trained in {time.perf_counter() - started:.0f} s; threshold "
        f"{detector.threshold:.4f} for ≤ {args.target_frr:.1%} clean rejections; "
        f"guard saved to {args.guard}"
    )
    return guard, features


def command_train_detector(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    if spec is None:
        raise CommandError(f"{args.model} has no model description (class names, input size)")
    fit_guard(model, spec, load_adversarial_set(args.set), args)


def report(
    guard: Guard,
    adversarial: AdversarialSet,
    out: Path,
    args: argparse.Namespace,
    features: torch.Tensor | None = None,
) -> None:
    """Measure the guard on the set's test split and write the report (shared with demo)."""
    trained_on = guard.detector.attack_names
    unseen = (
        [name for name in UNSEEN_ATTACKS if name not in trained_on]
        if args.unseen_attacks is None
        else args.unseen_attacks
    )
    try:
        check_unseen_attacks(unseen, trained_on)
    except ValueError as error:
        raise CommandError(str(error)) from error
    result, view = build_detection_report(
        guard.detector,
        adversarial,
        features=features,
        baselines=not args.skip_baselines,
        leave_one_out=not args.skip_leave_one_out,
        unseen_attacks=unseen,
    )
    write_detection_report(result, view, adversarial, out)
    rows = [
        f"{r.attack:5s} {r.eps:6s} AUROC {r.auroc:.3f}  TPR {r.tpr:.3f}  "
        f"named {r.named_successful:.3f}  "
        + "  ".join(f"{name} {value:.3f}" for name, value in r.baselines.items())
        for r in result.rows
    ]
    print("\n".join(rows))
    for row in result.unseen:
        print(
            f"unseen {row.attack:8s} {row.eps:6s} AUROC {row.auroc:.3f}  "
            f"(successful {row.auroc_successful:.3f}, {row.successful}/{row.images})"
        )
    print(
        f"clean false rejections {result.clean_false_rejection:.3f}; attack named "
        f"{result.naming_accuracy:.3f}, family {result.family_accuracy:.3f}"
    )
    for left in result.leave_one_out:
        print(
            f"left out {left.attack:8s} AUROC {left.auroc:.3f}  (successful "
            f"{left.auroc_successful:.3f}, detected {left.tpr_successful:.3f})"
        )
    print(f"report: {out / 'report.md'}")


def command_evaluate(args: argparse.Namespace) -> None:
    guard = Guard.load(args.guard)
    report(guard, load_adversarial_set(args.set), Path(args.out), args)


def add_build_set(commands: Subcommands) -> None:
    """``build-set``."""
    build = commands.add_parser(
        "build-set", help="attack a dataset with many attacks; write the adversarial set"
    )
    build.add_argument("--model", required=True, help="model folder or TorchScript file")
    build.add_argument("--data", default="bundled")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--zip", action="store_true", help="also pack the set into OUT.zip")
    build.add_argument("--seed", type=int, default=0)
    add_set_options(build, fraction=1.0)
    build.set_defaults(handler=command_build_set)


def add_train_detector(commands: Subcommands) -> None:
    """``train-detector``."""
    detector = commands.add_parser(
        "train-detector", help="train a detector on an adversarial set; save the guard"
    )
    detector.add_argument("--model", required=True, help="the classifier the set was made on")
    detector.add_argument("--set", required=True, help="adversarial set folder (build-set)")
    detector.add_argument("--guard", required=True, help="output folder for the guard")
    detector.add_argument("--seed", type=int, default=0)
    add_guard_options(detector)
    detector.set_defaults(handler=command_train_detector)


def add_evaluate(commands: Subcommands) -> None:
    """``evaluate``."""
    evaluate = commands.add_parser(
        "evaluate", help="report a guard's detection on an adversarial set's test split"
    )
    evaluate.add_argument("--guard", required=True, help="guard folder (train-detector)")
    evaluate.add_argument("--set", required=True, help="adversarial set folder (build-set)")
    evaluate.add_argument("--out", required=True, help="report folder")
    add_report_options(evaluate)
    evaluate.set_defaults(handler=command_evaluate)
