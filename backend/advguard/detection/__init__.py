"""Detecting adversarial images: the adversarial dataset, the detector and baselines."""

from advguard.detection.baselines import FeatureSqueezing, Mahalanobis
from advguard.detection.builder import (
    AUGMENTED,
    CLEAN,
    CONTROLS,
    NOISE_CONTROLS,
    AdversarialSet,
    AdversarialSetError,
    AttackSpec,
    BuildConfig,
    ManifestRow,
    attack_family,
    build_adversarial_set,
    default_attack_specs,
    export_zip,
    load_adversarial_set,
)
from advguard.detection.detector import (
    Detection,
    Detector,
    DetectorConfig,
    DetectorLoadError,
    extract_features,
    train_detector,
)
from advguard.detection.features import DetectorFeatures

__all__ = [
    "AUGMENTED",
    "CLEAN",
    "CONTROLS",
    "NOISE_CONTROLS",
    "AdversarialSet",
    "AdversarialSetError",
    "AttackSpec",
    "BuildConfig",
    "Detection",
    "Detector",
    "DetectorConfig",
    "DetectorFeatures",
    "DetectorLoadError",
    "FeatureSqueezing",
    "Mahalanobis",
    "ManifestRow",
    "attack_family",
    "build_adversarial_set",
    "default_attack_specs",
    "export_zip",
    "extract_features",
    "load_adversarial_set",
    "train_detector",
]
