"""Running one attack over a dataset in batches and measuring what it did to each image."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.attacks import Attack
from advguard.data.dataset import ImageDataset
from advguard.data.images import to_uint8
from advguard.models.training import predict_logits

ProgressCallback = Callable[[int, int], None]


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
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> AttackOutcome:
    """Attack every image of ``dataset`` and measure the result.

    ``targets`` (for a targeted attack) holds one target class per image. With
    ``quantize`` the adversarial images are rounded to 8 bits first, so that every number
    describes what a PNG file of the result would hold.
    """
    goals = dataset.labels
    if attack.targeted:
        if targets is None:
            raise ValueError("a targeted attack needs one target class per image")
        goals = targets
    start = time.perf_counter()
    batches = []
    total = len(dataset)
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
    predicted_before = predict_logits(model, dataset.images).argmax(1)
    predicted_after = predict_logits(model, adversarial).argmax(1)
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
