"""``advguard train``: the built-in classifier."""

from __future__ import annotations

import argparse
from pathlib import Path

from advguard.cli.common import (
    Subcommands,
    add_training_options,
    job_params,
    progress_bar,
    report_skipped,
)
from advguard.config import Settings
from advguard.data import ImageDataset, load_dataset
from advguard.jobs import TrainClassifierParams
from advguard.jobs.steps import TrainedClassifier, train_classifier
from advguard.models import HOLDOUT_FRACTION, export_torchscript


def train_and_report(
    args: argparse.Namespace, out: Path
) -> tuple[TrainedClassifier, dict[str, ImageDataset]]:
    """Load data, run the training step into ``out`` and print its test metrics; shared by
    train and demo."""
    config = job_params(
        TrainClassifierParams,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        time_limit_s=args.time_limit,
        ema_decay=args.ema_decay,
    ).train_config()
    folder = load_dataset(args.data, image_size=args.image_size, seed=args.seed)
    report_skipped(folder.skipped)
    train, test = folder.splits["train"], folder.splits["test"]
    print(
        f"data: {args.data}: train {len(train)} ({HOLDOUT_FRACTION:.0%} held out for "
        f"validation and the detector), test {len(test)}; classes {', '.join(folder.class_names)}"
    )
    with progress_bar("training", unit="epoch") as progress:
        trained = train_classifier(train, test, config, out, progress)
    history = trained.history
    kept = "moving average kept" if history.averaged else f"best {history.best_epoch + 1}"
    print(
        f"trained in {history.seconds:.0f} s ({len(history.epochs)} epochs, {kept}); "
        f"test accuracy {trained.metrics.accuracy:.4f} on {len(test)} images"
    )
    print(trained.metrics.format_confusion())
    print(f"model saved to {trained.folder}")
    return trained, folder.splits


def command_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    trained, _ = train_and_report(args, out)
    if args.torchscript:
        path = export_torchscript(trained.model, trained.spec, out / "model.pt")
        print(f"TorchScript archive: {path}")


def add_train(commands: Subcommands, settings: Settings) -> None:
    """``train``."""
    train = commands.add_parser("train", help="train the built-in classifier on a dataset")
    add_training_options(train, settings)
    train.add_argument("--out", default="advguard-out/train", help="output folder")
    train.add_argument("--torchscript", action="store_true", help="also export model.pt")
    train.set_defaults(handler=command_train)
