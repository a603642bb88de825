"""Defenses: input preprocessing (squeezers, JPEG, smoothing) as model wrappers, plain or
with BPDA, the squeezers that detectors share, and adversarial training (PGD-AT, TRADES)."""

from advguard.defenses.adversarial import (
    CHECKPOINT_FILE,
    AdversarialEpochResult,
    AdversarialTrainConfig,
    AdversarialTrainHistory,
    CheckpointError,
    adversarial_fit,
    adversarial_train,
    trades_perturbation,
)
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
    "CHECKPOINT_FILE",
    "PREPROCESSORS",
    "AdversarialEpochResult",
    "AdversarialTrainConfig",
    "AdversarialTrainHistory",
    "CheckpointError",
    "PreprocessingDefense",
    "adversarial_fit",
    "adversarial_train",
    "bit_depth",
    "bit_depth_reduce",
    "gaussian_blur",
    "jpeg",
    "median",
    "median_filter",
    "trades_perturbation",
]
