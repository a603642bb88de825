"""``advguard train``: the built-in classifier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from advguard.cli.common import (
    Subcommands,
    add_training_options,
    report_skipped,
)
from advguard.config import Settings
from advguard.data import ImageDataset, load_dataset
from advguard.evaluation import (
    evaluate_classifier,
    training_summary,
)
from advguard.models import (
    HOLDOUT_FRACTION,
    ModelSpec,
    TrainConfig,
    export_torchscript,
    fit_classifier,
    save_model,
)


def train_and_report(
    args: argparse.Namespace, out: Path
) -> tuple[torch.nn.Module, ModelSpec, dict[str, ImageDataset]]:
    """Load data, train, save the model and print test metrics; shared by train and demo."""
    folder = load_dataset(args.data, image_size=args.image_size, seed=args.seed)
    report_skipped(folder.skipped)
    train, test = folder.splits["train"], folder.splits["test"]
    print(
        f"data: {args.data}: train {len(train)} ({HOLDOUT_FRACTION:.0%} held out for "
        f"validation and the detector), test {len(test)}; classes {', '.join(folder.class_names)}"
    )
    config = TrainConfig(
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        time_limit_s=args.time_limit,
        ema_decay=args.ema_decay,
    )
    model, spec, history = fit_classifier(train, config)
    metrics = evaluate_classifier(model, test)
    save_model(model, spec, out / "model", history.holdout_files)
    summary = training_summary(metrics, history)
    (out / "model" / "metrics.json").write_text(json.dumps(summary, indent=2))
    kept = "moving average kept" if history.averaged else f"best {history.best_epoch + 1}"
    print(
        f"trained in {history.seconds:.0f} s ({len(history.epochs)} epochs, {kept}); "
        f"test accuracy {metrics.accuracy:.4f} on {len(test)} images"
    )
    print(metrics.format_confusion())
    print(f"model saved to {out / 'model'}")
    return model, spec, folder.splits


def command_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    model, spec, _ = train_and_report(args, out)
    if args.torchscript:
        path = export_torchscript(model, spec, out / "model.pt")
        print(f"TorchScript archive: {path}")


def add_train(commands: Subcommands, settings: Settings) -> None:
    """``train``."""
    train = commands.add_parser("train", help="train the built-in classifier on a dataset")
    add_training_options(train, settings)
    train.add_argument("--out", default="advguard-out/train", help="output folder")
    train.add_argument("--torchscript", action="store_true", help="also export model.pt")
    train.set_defaults(handler=command_train)
