"""Defenses: input preprocessing (squeezers, JPEG, smoothing) as model wrappers, plain or
with BPDA, and the squeezers that detectors share."""

from advguard.defenses.preprocessing import (
    PREPROCESSORS,
    PreprocessingDefense,
    bit_depth,
    gaussian_blur,
    jpeg,
    median,
)
from advguard.defenses.squeeze import bit_depth_reduce, median_filter

__all__ = [
    "PREPROCESSORS",
    "PreprocessingDefense",
    "bit_depth",
    "bit_depth_reduce",
    "gaussian_blur",
    "jpeg",
    "median",
    "median_filter",
]
