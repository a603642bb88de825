"""Input-preprocessing defenses as model wrappers, each usable plain or with BPDA.

A wrapper computes ``classifier(preprocess(x))``. Plain, its gradient is the true one:
zero through rounding (bit depth) and none at all through JPEG, which is why such defenses
look strong against gradient attacks while only hiding the gradient. With ``bpda=True``
the backward pass treats the preprocessing as the identity (Backward Pass Differentiable
Approximation, Athalye et al. 2018), which is how an attacker who knows the defense gets
around that: evaluating both shows the gradient masking.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from advguard.defenses.squeeze import median_filter


def bit_depth(images: Tensor, bits: int = 4) -> Tensor:
    """Round to ``2**bits`` levels (its true gradient is zero almost everywhere)."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be between 1 and 8, got {bits}")
    levels = 2**bits - 1
    return (images * levels).round() / levels


def jpeg(images: Tensor, quality: int = 75) -> Tensor:
    """Encode and decode each image as JPEG at ``quality``: a file round trip, so the
    gradient that reaches ``images`` is zero (as through any rounding)."""
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be between 1 and 95, got {quality}")
    decoded = []
    for image in images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu():
        pixels = image.permute(1, 2, 0).squeeze(-1).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
        array = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
        decoded.append(torch.from_numpy(array.reshape(*pixels.shape[:2], -1)).permute(2, 0, 1))
    return torch.stack(decoded).to(images.device, images.dtype) + images * 0


def median(images: Tensor, size: int = 3) -> Tensor:
    """Median smoothing over ``size×size`` (its gradient reaches the selected pixels)."""
    return median_filter(images, size)


def gaussian_blur(images: Tensor, sigma: float = 1.0) -> Tensor:
    """Gaussian smoothing, per channel, with reflected edges (fully differentiable)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = max(1, int(3 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


PREPROCESSORS: dict[str, Callable[..., Tensor]] = {
    "bit_depth": bit_depth,
    "median": median,
    "jpeg": jpeg,
    "gaussian_blur": gaussian_blur,
}


class PreprocessingDefense(nn.Module):
    """``classifier(preprocess(x))``; ``bpda=True`` makes the backward pass skip the
    preprocessing (identity), as an attacker who knows the defense would."""

    def __init__(
        self, classifier: nn.Module, name: str, *, bpda: bool = False, **params: object
    ) -> None:
        super().__init__()
        if name not in PREPROCESSORS:
            raise ValueError(f"unknown preprocessing {name!r}; known: {', '.join(PREPROCESSORS)}")
        self.classifier = classifier
        self.name = name
        self.bpda = bpda
        self.params = params
        PREPROCESSORS[name](torch.zeros(1, 1, 8, 8), **params)  # refuse bad parameters now
        # Take the classifier's mode: a new module is in training mode, and restoring that
        # after an evaluation (predict_logits, attacks) would put the classifier in it too.
        self.train(classifier.training)

    def preprocess(self, images: Tensor) -> Tensor:
        processed = PREPROCESSORS[self.name](images, **self.params)
        if self.bpda:
            return images + (processed - images).detach()
        return processed

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.preprocess(images))
