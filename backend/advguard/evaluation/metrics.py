"""Classifier metrics on a labelled dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor, nn

from advguard.data.dataset import ImageDataset
from advguard.models.training import EpochResult, TrainHistory, predict_labels

Finite = Annotated[float, "finite"]
"""A float that is never NaN (a budget, a duration, a threshold, a point of a curve): the
results' JSON schema gives it as a number, where other floats may be ``null``."""


def confusion_matrix(labels: Tensor, predictions: Tensor, num_classes: int) -> list[list[int]]:
    """Counts with rows for the true class and columns for the predicted class."""
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes).tolist()


@dataclass
class ClassifierMetrics:
    """Accuracy and confusion matrix of a classifier on one dataset."""

    accuracy: float
    confusion_matrix: list[list[int]]
    class_names: list[str]

    def format_confusion(self) -> str:
        """The confusion matrix as aligned text, true classes down, predictions across."""
        return format_confusion(self.confusion_matrix, self.class_names)


def evaluate_classifier(model: nn.Module, dataset: ImageDataset) -> ClassifierMetrics:
    """Top-1 accuracy and confusion matrix of ``model`` on ``dataset``."""
    predictions = predict_labels(model, dataset.images)
    return ClassifierMetrics(
        accuracy=float((predictions == dataset.labels).float().mean()),
        confusion_matrix=confusion_matrix(dataset.labels, predictions, dataset.num_classes),
        class_names=dataset.class_names,
    )


def plot_confusion(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    path: str | Path,
    *,
    title: str,
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Path:
    """A confusion matrix as a heat map with its counts written in, saved as a PNG."""
    counts = np.array(matrix)
    size = 1.2 + 1.1 * len(labels)
    figure, axis = plt.subplots(figsize=(size + 0.8, size))
    axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if count > counts.max() / 2 else "black"
        axis.text(j, i, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def format_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> str:
    width = max(len("true \\ predicted"), *(len(name) for name in class_names)) + 2
    lines = ["true \\ predicted".ljust(width) + "".join(n[:11].rjust(12) for n in class_names)]
    for name, row in zip(class_names, matrix, strict=True):
        lines.append(name.ljust(width) + "".join(str(v).rjust(12) for v in row))
    return "\n".join(lines)


@dataclass
class TrainingSummary:
    """What a trained model's ``metrics.json`` records (the CLI and jobs write the same)."""

    test_accuracy: float
    confusion_matrix: list[list[int]]
    """Test images, true classes down, predictions across."""
    class_names: list[str]
    train_seconds: Finite
    epochs_run: int
    best_epoch: int
    """1-based; the kept epoch unless the moving average was kept."""
    best_val_accuracy: float
    moving_average_kept: bool
    final_val_accuracy: float | None
    held_out_images: int
    """Training images held out for validation and the detector."""
    history: list[EpochResult]
    """Every epoch's training loss and validation loss and accuracy: the learning curves."""


def training_summary(metrics: ClassifierMetrics, history: TrainHistory) -> dict[str, Any]:
    """A :class:`TrainingSummary` as the plain dictionary ``metrics.json`` holds."""
    summary = TrainingSummary(
        test_accuracy=metrics.accuracy,
        confusion_matrix=metrics.confusion_matrix,
        class_names=metrics.class_names,
        train_seconds=history.seconds,
        epochs_run=len(history.epochs),
        best_epoch=history.best_epoch + 1,
        best_val_accuracy=history.best_val_accuracy,
        moving_average_kept=history.averaged,
        final_val_accuracy=history.epochs[-1].val_accuracy if history.epochs else None,
        held_out_images=len(history.holdout_files),
        history=list(history.epochs),
    )
    return asdict(summary)
