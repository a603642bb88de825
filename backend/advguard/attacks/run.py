"""Running one attack over a dataset in batches and measuring what it did to each image."""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.attacks.base import Attack
from advguard.data.dataset import ImageDataset
from advguard.data.images import save_png, to_uint8
from advguard.models.memory import fitting_batch_size
from advguard.models.training import predict_labels

ProgressCallback = Callable[[int, int], None]


def format_eps(eps: float | None) -> str:
    """``8/255`` style for budgets on the 8-bit grid, else a decimal; ``L2`` for none."""
    if eps is None:
        return "L2"
    steps = eps * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{eps:.4g}"


def parse_budget(value: object) -> float:
    """An L∞ budget as a user writes it, in the one syntax every field takes: ``8/255``,
    ``0.031``, or a bare ``8`` meaning 8/255 (a number of at least 1 counts grey levels of
    1/255; a fraction is taken as written). ``ValueError`` says what is wrong."""
    example = "write 8/255, 0.031 or 8 (= 8/255)"
    if isinstance(value, str):
        text = value.replace(" ", "")
        try:
            number = float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"budget {value!r} is not a number: {example}") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ValueError(f"budget {value!r} is not a number: {example}")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"budget {value!r} must be 0 or more: {example}")
    written_as_fraction = isinstance(value, str) and "/" in value
    if number >= 1 and not written_as_fraction:
        number /= 255
    if number > 1:
        raise ValueError(f"budget {value!r} is more than the whole pixel range [0, 1]")
    return number


@dataclass
class AttackOutcome:
    """Per-image results of an attack over a dataset (all tensors have length N)."""

    adversarial: Tensor
    labels: Tensor
    targets: Tensor | None
    predicted_before: Tensor
    predicted_after: Tensor
    success: Tensor
    linf: Tensor
    l2: Tensor
    seconds: float

    @property
    def clean_correct(self) -> Tensor:
        return self.predicted_before == self.labels

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.float().mean())

    @property
    def adversarial_accuracy(self) -> float:
        return float((self.predicted_after == self.labels).float().mean())

    @property
    def success_rate(self) -> float:
        """Success among images the model classified correctly before the attack."""
        correct = self.clean_correct
        return float(self.success[correct].float().mean()) if correct.any() else float("nan")


def random_targets(labels: Tensor, num_classes: int, seed: int = 0) -> Tensor:
    """A random target class different from each true label (reproducible by seed)."""
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels + offsets) % num_classes


def run_attack(
    model: nn.Module,
    attack: Attack,
    dataset: ImageDataset,
    *,
    targets: Tensor | None = None,
    batch_size: int = 128,
    quantize: bool = False,
    predicted_before: Tensor | None = None,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> AttackOutcome:
    """Attack every image of ``dataset`` and measure the result.

    ``targets`` (for a targeted attack) holds one target class per image. With
    ``quantize`` the adversarial images are rounded to 8 bits first, so that every number
    describes what a PNG file of the result would hold.
    """
    goals = dataset.labels
    total = len(dataset)
    if total:
        batch_size = fitting_batch_size(model, dataset.images.shape[1:], batch_size)
    if attack.targeted:
        if targets is None:
            raise ValueError("a targeted attack needs one target class per image")
        goals = targets
    start = time.perf_counter()
    batches = []
    bar = tqdm(total=total, desc=attack.name, unit="img", disable=not show_progress, leave=False)
    for begin in range(0, total, batch_size):
        images = dataset.images[begin : begin + batch_size]
        goal = goals[begin : begin + batch_size]
        adversarial = attack(images, goal)
        if quantize:
            adversarial = to_uint8(adversarial).float() / 255.0
        batches.append(adversarial)
        bar.update(len(images))
        if progress is not None:
            progress(min(begin + batch_size, total), total)
    bar.close()
    seconds = time.perf_counter() - start
    adversarial = torch.cat(batches) if batches else dataset.images.clone()
    if predicted_before is None:
        predicted_before = predict_labels(model, dataset.images)
    predicted_after = predict_labels(model, adversarial)
    success = predicted_after == goals if attack.targeted else predicted_after != goals
    perturbation = (adversarial - dataset.images).flatten(1)
    return AttackOutcome(
        adversarial=adversarial,
        labels=dataset.labels,
        targets=targets,
        predicted_before=predicted_before,
        predicted_after=predicted_after,
        success=success,
        linf=perturbation.abs().amax(1),
        l2=perturbation.norm(dim=1),
        seconds=seconds,
    )


def save_adversarial_set(
    out: Path,
    attack_name: str,
    params: dict[str, object],
    dataset: ImageDataset,
    outcome: AttackOutcome,
) -> None:
    """Write each adversarial image as an 8-bit PNG plus a ``manifest.csv`` describing it
    (source, labels, attack and parameters, predictions before and after, success, size)."""
    out.mkdir(parents=True, exist_ok=True)
    class_names = dataset.class_names
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
