"""The ``advguard`` command line: one sub-command per job, plus ``demo``."""

from __future__ import annotations

import argparse
import csv
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
from advguard.data import (
    DatasetImportError,
    ImageDataset,
    SkippedFile,
    load_dataset,
    save_png,
    split_holdout,
)
from advguard.evaluation import (
    DEMO_EPSILONS,
    AttackOutcome,
    format_eps,
    format_table,
    random_targets,
    robustness_table,
    run_attack,
)
from advguard.models import (
    ModelLoadError,
    ModelSpec,
    TrainConfig,
    build_model,
    export_torchscript,
    load_classifier,
    predict_logits,
    save_model,
    train_classifier,
)
from advguard.runtime import configure_threads, reexec_with_jemalloc


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


def confusion_matrix(
    labels: torch.Tensor, predictions: torch.Tensor, num_classes: int
) -> list[list[int]]:
    """Rows: true class; columns: predicted class."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes).tolist()


def format_confusion(matrix: list[list[int]], class_names: Sequence[str]) -> str:
    width = max(len(name) for name in class_names) + 2
    lines = ["true \\ predicted".ljust(width) + "".join(n[:10].rjust(12) for n in class_names)]
    for name, row in zip(class_names, matrix, strict=True):
        lines.append(name.ljust(width) + "".join(str(v).rjust(12) for v in row))
    return "\n".join(lines)


def train_and_report(
    args: argparse.Namespace, out: Path
) -> tuple[torch.nn.Module, ModelSpec, ImageDataset]:
    """Load data, train, save the model and print test accuracy; shared by train and demo."""
    folder = load_dataset(args.data, image_size=args.image_size, seed=args.seed)
    report_skipped(folder.skipped)
    train_all, test = folder.splits["train"], folder.splits["test"]
    train, val = split_holdout(train_all, 0.1, seed=args.seed)
    print(
        f"data: {args.data} — train {len(train)}, validation {len(val)}, test {len(test)}; "
        f"classes {', '.join(folder.class_names)}"
    )
    spec = ModelSpec(
        class_names=folder.class_names,
        in_channels=train.channels,
        image_size=train.image_size,
        mean=[0.5] * train.channels,
        std=[0.25] * train.channels,
    )
    model = build_model(spec)
    config = TrainConfig(
        epochs=args.epochs, patience=args.patience, seed=args.seed, time_limit_s=args.time_limit
    )
    started = time.perf_counter()
    history = train_classifier(model, train, val, config)
    seconds = time.perf_counter() - started
    predictions = predict_logits(model, test.images).argmax(1)
    test_accuracy = float((predictions == test.labels).float().mean())
    matrix = confusion_matrix(test.labels, predictions, spec.num_classes)
    save_model(model, spec, out / "model")
    metrics = {
        "test_accuracy": test_accuracy,
        "confusion_matrix": matrix,
        "class_names": spec.class_names,
        "train_seconds": seconds,
        "epochs_run": len(history.epochs),
        "best_epoch": history.best_epoch + 1,
        "best_val_accuracy": history.best_val_accuracy,
    }
    (out / "model" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"trained in {seconds:.0f} s ({len(history.epochs)} epochs, "
        f"best {history.best_epoch + 1}); test accuracy {test_accuracy:.4f} on {len(test)} images"
    )
    print(format_confusion(matrix, spec.class_names))
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
    write_adversarial_set(
        Path(args.out), attack.name, attack.params(), dataset, outcome, folder.class_names
    )
    print(
        f"{attack!r}: success {outcome.success_rate:.3f} on {int(outcome.clean_correct.sum())} "
        f"correctly classified images; accuracy {outcome.clean_accuracy:.3f} → "
        f"{outcome.adversarial_accuracy:.3f}; {outcome.seconds:.1f} s"
    )
    print(f"wrote {len(dataset)} PNG files and manifest.csv to {args.out}")


def write_adversarial_set(
    out: Path,
    attack_name: str,
    params: dict[str, object],
    dataset: ImageDataset,
    outcome: AttackOutcome,
    class_names: list[str],
) -> None:
    """PNG per adversarial image plus ``manifest.csv`` describing each one."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(len(dataset)):
        true_name = class_names[int(dataset.labels[index])]
        file_name = f"{index:05d}_{true_name}.png"
        save_png(outcome.adversarial[index], str(out / file_name))
        rows.append(
            {
                "file": file_name,
                "source_file": dataset.files[index],
                "true_label": true_name,
                "target_label": ""
                if outcome.targets is None
                else class_names[int(outcome.targets[index])],
                "attack": attack_name,
                "params": json.dumps(params, sort_keys=True),
                "predicted_before": class_names[int(outcome.predicted_before[index])],
                "predicted_after": class_names[int(outcome.predicted_after[index])],
                "success": bool(outcome.success[index]),
                "linf": f"{float(outcome.linf[index]):.6f}",
                "l2": f"{float(outcome.l2[index]):.6f}",
            }
        )
    with open(out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["file"])
        writer.writeheader()
        writer.writerows(rows)


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
        f"attacking {len(test)} test images with {', '.join(ATTACKS)} "
        f"at ε = {', '.join(format_eps(e) for e in DEMO_EPSILONS)} (CW: L2, its defaults)"
    )
    rows = robustness_table(model, test, tuple(ATTACKS), DEMO_EPSILONS)
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
        sub.add_argument("--patience", type=int, default=10, help="early-stopping patience")
        sub.add_argument(
            "--time-limit", type=float, default=None, help="stop training after S seconds"
        )
        sub.add_argument("--seed", type=int, default=0)

    train = commands.add_parser("train", help="train the built-in classifier on a dataset")
    add_training_options(train, epochs=40)
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
