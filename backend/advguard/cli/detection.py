"""``advguard build-set``, ``train-detector`` and ``evaluate``: the adversarial set, the
detector and its report."""

from __future__ import annotations

import argparse
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
    progress_bar,
)
from advguard.data import ImageDataset
from advguard.detection import (
    AdversarialSet,
    BuildConfig,
    DetectorConfig,
    build_adversarial_set,
    load_adversarial_set,
)
from advguard.evaluation import format_table
from advguard.guard import Guard
from advguard.jobs.steps import (
    describe_set,
    fit_guard,
    report_detector,
    set_config,
    unseen_attacks,
)
from advguard.models import ModelSpec, load_classifier
from advguard.portable import export_guard


def build_config(args: argparse.Namespace, model_folder: str | Path) -> BuildConfig:
    """The builder's configuration from the set options (refused as a command error)."""
    try:
        return set_config(
            args.attacks,
            args.eps,
            fraction=args.fraction,
            seed=args.seed,
            model_folder=model_folder,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error


def make_set(
    model: torch.nn.Module,
    splits: dict[str, ImageDataset],
    out: Path,
    config: BuildConfig,
    zip_path: Path | None = None,
) -> AdversarialSet:
    """Build the adversarial set into ``out`` (one chunk of the job's build) and say what
    it holds (shared with demo)."""
    started = time.perf_counter()
    try:
        with progress_bar("adversarial set", unit="img") as progress:
            adversarial = build_adversarial_set(
                model, splits, out, config, progress=progress, show_progress=False
            )
    except ValueError as error:  # held-out images missing from this dataset
        raise CommandError(str(error)) from error
    rows = describe_set(adversarial, out, zip_path)
    print(
        f"adversarial set: {len(adversarial)} images ({len(config.specs)} attack settings on "
        f"{config.fraction:.0%} of each split's images, plus clean images and controls) "
        f"in {time.perf_counter() - started:.0f} s → {out}; the detector learns on "
        f"{config.detector_images()}"
    )
    print(format_table(rows))
    if zip_path is not None:
        print(f"zip: {zip_path}")
    return adversarial


def command_build_set(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    config = build_config(args, args.model)  # refuse bad attacks or budgets before the data
    out = Path(args.out)
    splits = load_splits(args.data, spec, args.seed)
    make_set(model, splits, out, config, out.with_suffix(".zip") if args.zip else None)


def train_guard(
    model: torch.nn.Module, spec: ModelSpec, adversarial: AdversarialSet, args: argparse.Namespace
) -> tuple[Guard, torch.Tensor]:
    """Run the detector step into ``args.guard`` and say how it went (shared with demo)."""
    config = DetectorConfig(target_false_rejection=args.target_frr, seed=args.seed)
    started = time.perf_counter()
    with progress_bar("detector", unit="img") as progress:
        guard, features = fit_guard(model, spec, adversarial, config, Path(args.guard), progress)
    print(
        f"detector trained in {time.perf_counter() - started:.0f} s; threshold "
        f"{guard.detector.threshold:.4f} for ≤ {args.target_frr:.1%} clean rejections; "
        f"guard saved to {args.guard}"
    )
    return guard, features


def command_train_detector(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    if spec is None:
        raise CommandError(f"{args.model} has no model description (class names, input size)")
    train_guard(model, spec, load_adversarial_set(args.set), args)


def report(
    guard: Guard,
    adversarial: AdversarialSet,
    out: Path,
    args: argparse.Namespace,
    features: torch.Tensor | None = None,
) -> None:
    """Run the report step into ``out`` and print its rows (shared with demo)."""
    try:
        unseen = unseen_attacks(args.unseen_attacks, guard.detector.attack_names)
    except ValueError as error:
        raise CommandError(str(error)) from error
    with progress_bar("detection report") as progress:
        result = report_detector(
            guard.detector,
            adversarial,
            out,
            progress,
            unseen=unseen,
            baselines=not args.skip_baselines,
            leave_one_out=not args.skip_leave_one_out,
            features=features,
        )
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


def command_export_guard(args: argparse.Namespace) -> None:
    guard = Guard.load(args.guard, serving=True)
    path = export_guard(guard, args.out)
    print(f"guard exported to {path} ({path.stat().st_size / 1e6:.1f} MB), TorchScript:")
    print(
        f'  guard = torch.jit.load("{path}")\n'
        f"  answer = guard(images)  # N×{guard.spec.in_channels}×{guard.spec.image_size}×"
        f"{guard.spec.image_size} in [0, 1]\n"
        "  answer: class_probabilities, score, is_adversarial (threshold "
        f"{guard.threshold:.4f}), attack_probabilities"
    )


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


def add_export_guard(commands: Subcommands) -> None:
    """``export-guard``."""
    export = commands.add_parser(
        "export-guard",
        help="write a guard as one TorchScript file that runs without advguard",
    )
    export.add_argument("--guard", required=True, help="guard folder (train-detector)")
    export.add_argument("--out", required=True, help="the .pt file to write")
    export.set_defaults(handler=command_export_guard)
