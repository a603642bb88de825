"""The built-in classifier: a compact CNN with its input normalisation inside."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

ARCHITECTURE = "advguard-cnn"


@dataclass
class ModelSpec:
    """Everything needed to rebuild a classifier; saved as JSON beside its weights."""

    class_names: list[str]
    in_channels: int = 1
    image_size: int = 128
    width: int = 16
    depth: int = 5
    dropout: float = 0.2
    mean: list[float] = field(default_factory=lambda: [0.5])
    std: list[float] = field(default_factory=lambda: [0.25])
    architecture: str = ARCHITECTURE

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``, so callers pass pixels in [0, 1]."""

    mean: Tensor
    std: Tensor

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvClassifier(nn.Module):
    """Conv-BN-ReLU-pool blocks doubling in width, global average pooling, linear head.

    Takes ``N×C×H×W`` float images in [0, 1] and returns logits ``N×classes``.
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        if len(spec.mean) != spec.in_channels or len(spec.std) != spec.in_channels:
            raise ValueError("mean and std need one value per input channel")
        self.normalize = Normalize(spec.mean, spec.std)
        widths = [spec.width * 2**i for i in range(spec.depth)]
        blocks = [_conv_block(spec.in_channels, widths[0])]
        blocks += [_conv_block(a, b) for a, b in itertools.pairwise(widths)]
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(spec.dropout),
            nn.Linear(widths[-1], spec.num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(self.normalize(x)))


def build_model(spec: ModelSpec) -> nn.Module:
    """Build an untrained classifier for ``spec``."""
    if spec.architecture != ARCHITECTURE:
        raise ValueError(f"unknown architecture {spec.architecture!r}; built in: {ARCHITECTURE}")
    return ConvClassifier(spec)
