"""The ``advguard`` command line: one sub-command per job, plus ``demo``."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
import traceback
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import torch

from advguard import __version__
from advguard.attacks import ATTACKS, AttackError, create_attack
from advguard.config import get_settings
from advguard.data import DatasetImportError, ImageDataset, SkippedFile, load_dataset
from advguard.evaluation import (
    DEMO_ATTACKS,
    DEMO_EPSILONS,
    evaluate_classifier,
    format_eps,
    format_table,
    random_targets,
    robustness_table,
    run_attack,
    save_adversarial_set,
)
from advguard.models import (
    ModelLoadError,
    ModelSpec,
    TrainConfig,
    export_torchscript,
    fit_classifier,
    load_classifier,
    save_model,
)
from advguard.runtime import configure_threads, reexec_with_jemalloc, tune_glibc_malloc


class CommandError(Exception):
    """A user mistake reported as one line, without a traceback."""


def parse_number(text: str) -> float:
    """``0.03``, ``8/255`` or ``1e-3`` as a float."""
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 8/255 or 0.03)") from error


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as bool, int, number or text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    key, raw = text.split("=", 1)
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        return key, int(raw)
    except ValueError:
        pass
    try:
        return key, parse_number(raw)
    except argparse.ArgumentTypeError:
        return key, raw


def train_and_report(
    args: argparse.Namespace, out: Path
) -> tuple[torch.nn.Module, ModelSpec, ImageDataset]:
    """Load data, train, save the model and print test metrics; shared by train and demo."""
    folder = load_dataset(args.data, image_size=args.image_size, seed=args.seed)
    report_skipped(folder.skipped)
    train, test = folder.splits["train"], folder.splits["test"]
    print(
        f"data: {args.data}: train {len(train)} (10 % held out for validation), "
        f"test {len(test)}; classes {', '.join(folder.class_names)}"
    )
    config = TrainConfig(
        epochs=args.epochs, patience=args.patience, seed=args.seed, time_limit_s=args.time_limit
    )
    model, spec, history = fit_classifier(train, config)
    metrics = evaluate_classifier(model, test)
    save_model(model, spec, out / "model")
    summary = {
        "test_accuracy": metrics.accuracy,
        "confusion_matrix": metrics.confusion_matrix,
        "class_names": metrics.class_names,
        "train_seconds": history.seconds,
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch + 1,
        "best_val_accuracy": history.best_val_accuracy,
    }
    (out / "model" / "metrics.json").write_text(json.dumps(summary, indent=2))
    print(
        f"trained in {history.seconds:.0f} s ({len(history.epochs)} epochs, "
        f"best {history.best_epoch + 1}); "
        f"test accuracy {metrics.accuracy:.4f} on {len(test)} images"
    )
    print(metrics.format_confusion())
    print(f"model saved to {out / 'model'}")
    return model, spec, test


def report_skipped(skipped: Sequence[SkippedFile]) -> None:
    """Name each file an import left out, so a bad file is visible but not fatal."""
    for item in skipped[:20]:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"… and {len(skipped) - 20} more skipped files", file=sys.stderr)


def command_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    model, spec, _ = train_and_report(args, out)
    if args.torchscript:
        path = export_torchscript(model, spec, out / "model.pt")
        print(f"TorchScript archive: {path}")


def command_attack(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    params = dict(args.param or [])
    if args.eps is not None:
        params["eps"] = args.eps
    # Check the attack's parameters before the (slower) dataset import.
    attack = create_attack(args.attack, model, targeted=args.targeted, seed=args.seed, **params)
    folder = load_dataset(args.data, image_size=spec.image_size if spec else None, seed=args.seed)
    report_skipped(folder.skipped)
    if spec is not None and spec.class_names != folder.class_names:
        raise CommandError(
            f"the model's classes {spec.class_names} differ from the dataset's {folder.class_names}"
        )
    if args.split not in folder.splits:
        raise CommandError(f"split {args.split!r} not found; have {', '.join(folder.splits)}")
    dataset = folder.splits[args.split]
    if args.limit:
        dataset = dataset.subset(torch.arange(min(args.limit, len(dataset))))
    targets = None
    if args.targeted:
        if args.target_class is None:
            targets = random_targets(dataset.labels, len(folder.class_names), seed=args.seed)
        elif args.target_class in folder.class_names:
            targets = torch.full_like(dataset.labels, folder.class_names.index(args.target_class))
        else:
            raise CommandError(f"unknown class {args.target_class!r}; have {folder.class_names}")
    outcome = run_attack(
        model, attack, dataset, targets=targets, batch_size=args.batch_size, quantize=True
    )
    save_adversarial_set(Path(args.out), attack.name, attack.params(), dataset, outcome)
    print(
        f"{attack!r}: success {outcome.success_rate:.3f} on {int(outcome.clean_correct.sum())} "
        f"correctly classified images; accuracy {outcome.clean_accuracy:.3f} → "
        f"{outcome.adversarial_accuracy:.3f}; {outcome.seconds:.1f} s"
    )
    print(f"wrote {len(dataset)} PNG files and manifest.csv to {args.out}")


def command_attacks(args: argparse.Namespace) -> None:
    for name, cls in ATTACKS.items():
        defaults = {
            key: p.default
            for key, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty
        }
        shown = ", ".join(f"{k}={format_eps(v) if k == 'eps' else v}" for k, v in defaults.items())
        print(
            f"{name:6s} ({cls.norm}) {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ''}"
        )
        print(f"       {shown}")


def command_demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    started = time.perf_counter()
    model, _, test = train_and_report(args, out)
    if args.limit:
        test = test.subset(torch.arange(min(args.limit, len(test))))
    print(
        f"attacking {len(test)} test images with {', '.join(DEMO_ATTACKS)} "
        f"at ε = {', '.join(format_eps(e) for e in DEMO_EPSILONS)} (CW: L2, its defaults)"
    )
    rows = robustness_table(model, test, DEMO_ATTACKS, DEMO_EPSILONS)
    table = format_table(rows)
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    (report / "robustness.json").write_text(json.dumps([r.to_dict() for r in rows], indent=2))
    (report / "robustness.md").write_text("# Robustness\n\n" + table + "\n")
    print(table)
    print(f"report in {report}; demo took {time.perf_counter() - started:.0f} s")


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="advguard", description="Attack, measure, defend and guard image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"advguard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_training_options(sub: argparse.ArgumentParser, epochs: int) -> None:
        sub.add_argument(
            "--data",
            default="bundled",
            help="bundled, brain-mri-4class, or a folder/zip path (default: bundled)",
        )
        sub.add_argument("--image-size", type=int, default=settings.image_size)
        sub.add_argument("--epochs", type=int, default=epochs)
        sub.add_argument(
            "--patience", type=int, default=TrainConfig.patience, help="early-stopping patience"
        )
        sub.add_argument(
            "--time-limit", type=float, default=None, help="stop training after S seconds"
        )
        sub.add_argument("--seed", type=int, default=0)

    train = commands.add_parser("train", help="train the built-in classifier on a dataset")
    add_training_options(train, epochs=60)
    train.add_argument("--out", default="advguard-out/train", help="output folder")
    train.add_argument("--torchscript", action="store_true", help="also export model.pt")
    train.set_defaults(handler=command_train)

    attack = commands.add_parser("attack", help="attack a dataset split; write PNGs + manifest")
    attack.add_argument("--model", required=True, help="model folder or TorchScript file")
    attack.add_argument("--data", default="bundled")
    attack.add_argument("--split", default="test")
    attack.add_argument("--attack", required=True, choices=sorted(ATTACKS))
    attack.add_argument("--eps", type=parse_number, default=None, help="budget, e.g. 8/255")
    attack.add_argument(
        "--param",
        type=parse_param,
        action="append",
        help="attack parameter key=value (repeatable), e.g. steps=20",
    )
    attack.add_argument("--targeted", action="store_true")
    attack.add_argument("--target-class", default=None, help="with --targeted; default: random")
    attack.add_argument("--limit", type=int, default=None, help="attack only the first N images")
    attack.add_argument("--batch-size", type=int, default=128)
    attack.add_argument("--seed", type=int, default=0)
    attack.add_argument("--out", required=True, help="output folder")
    attack.set_defaults(handler=command_attack)

    listing = commands.add_parser("attacks", help="list the attacks and their defaults")
    listing.set_defaults(handler=command_attacks)

    demo = commands.add_parser("demo", help="the whole pipeline on the bundled dataset")
    add_training_options(demo, epochs=30)
    demo.add_argument("--out", default="advguard-out/demo", help="output folder")
    demo.add_argument("--limit", type=int, default=None, help="attack only N test images")
    demo.set_defaults(handler=command_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advguard`` console script."""
    if argv is None:
        reexec_with_jemalloc()
    tune_glibc_malloc()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_threads(get_settings().num_threads)
    try:
        args.handler(args)
    except (
        CommandError,
        AttackError,
        DatasetImportError,
        ModelLoadError,
        FileNotFoundError,
        PermissionError,
    ) as error:
        if args.debug:
            traceback.print_exc()
        print(f"advguard {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advguard: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(
            f"advguard {args.command}: unexpected {type(error).__name__}: {error} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
