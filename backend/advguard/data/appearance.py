"""Does an image look like the scans a guard was fitted on? Five plain measures and the
range each takes on those scans.

A classifier answers for any input, a blank grey image included (the bundled CNN called
one "glioma, 61 %"), and the detector looks for perturbations, not for the wrong kind of
picture. So a guard keeps, per measure, the range its clean training scans cover, and
names the measures of a new image that fall outside. The range is the 0.1–99.9 %
quantiles of the training scans widened by a tenth of its width on each side. Measured on
brain-mri-4class (128 px, ranges from the 4,075 training scans): 0 of 480 clean test scans
fall outside (0.83 % without the widening); blank grey, black and white images, uniform
noise, a ramp, the scans inverted or at half contrast all do (every one of 32 images);
PGD-like noise of 2/255 or 8/255, Gaussian noise of σ 0.05 and gamma 0.5 do not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

DARK_LEVEL = 0.05
"""Pixels below this (in [0, 1]) count as background for :data:`MEASURES`' dark share."""
COVERAGE = 0.999
"""The share of training scans inside each measure's range before widening."""
WIDENING = 0.1
"""How much wider than the quantile range the accepted range is, per side, as a share of
the quantile range (0.1: the 0.83 % of clean test scans outside became 0)."""


def _differences(grey: Tensor) -> Tensor:
    """Mean absolute difference between horizontal and vertical neighbours."""
    across = (grey[:, :, 1:] - grey[:, :, :-1]).abs().mean((1, 2))
    down = (grey[:, 1:, :] - grey[:, :-1, :]).abs().mean((1, 2))
    return (across + down) / 2


def _fine_grain(grey: Tensor) -> Tensor:
    """Mean absolute discrete Laplacian: how much pixel-scale texture there is."""
    centre = grey[:, 1:-1, 1:-1]
    neighbours = grey[:, :-2, 1:-1] + grey[:, 2:, 1:-1] + grey[:, 1:-1, :-2] + grey[:, 1:-1, 2:]
    return (4 * centre - neighbours).abs().mean((1, 2))


MEASURES: dict[str, Callable[[Tensor], Tensor]] = {
    "brightness": lambda grey: grey.mean((1, 2)),
    "contrast": lambda grey: grey.std((1, 2)),
    "dark share": lambda grey: (grey < DARK_LEVEL).float().mean((1, 2)),
    "edges": _differences,
    "fine grain": _fine_grain,
}
"""Per image (``N×H×W`` grey levels in [0, 1]), one number each."""


def measure(images: Tensor) -> dict[str, Tensor]:
    """Every measure of ``images`` (``N×C×H×W``, uint8 or float in [0, 1])."""
    floats = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    grey = floats.mean(1)
    return {name: compute(grey) for name, compute in MEASURES.items()}


@dataclass
class AppearanceRange:
    """Per measure, the ``(low, high)`` range that images like the training scans fall in."""

    ranges: dict[str, tuple[float, float]]

    @classmethod
    def fit(cls, images: Tensor) -> AppearanceRange:
        """The ranges of ``images`` (the clean training scans; at least two)."""
        if len(images) < 2:
            raise ValueError("an appearance range needs at least two images")
        ranges = {}
        for name, values in measure(images).items():
            low = float(torch.quantile(values, 1 - COVERAGE))
            high = float(torch.quantile(values, COVERAGE))
            margin = WIDENING * (high - low)
            ranges[name] = (low - margin, high + margin)
        return cls(ranges)

    def differences(self, images: Tensor) -> list[list[str]]:
        """Per image, what lies outside the ranges, in words (empty: looks like the scans),
        e.g. ``"contrast 0.000 (training scans 0.130–0.357)"``."""
        measured = measure(images)
        found: list[list[str]] = [[] for _ in range(len(images))]
        for name, (low, high) in self.ranges.items():
            for i, value in enumerate(measured[name].tolist()):
                if not low <= value <= high:
                    found[i].append(f"{name} {value:.3f} (training scans {low:.3f}–{high:.3f})")
        return found

    def save(self, path: Path) -> None:
        """Write the ranges as JSON."""
        path.write_text(json.dumps({"ranges": self.ranges}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> AppearanceRange:
        """Read a range written by :meth:`save` (``ValueError`` when malformed)."""
        try:
            ranges = json.loads(path.read_text())["ranges"]
            unknown = set(ranges) - set(MEASURES)
            if unknown:
                raise ValueError(f"unknown measures {sorted(unknown)}")
            return cls({name: (float(low), float(high)) for name, (low, high) in ranges.items()})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path} is not an appearance range: {error}") from error
