"""Classifier architectures, training and pickle-free saving/loading."""

from advguard.models.cnn import (
    ARCHITECTURE,
    ConvClassifier,
    ModelSpec,
    Normalize,
    build_model,
    fold_batchnorm,
)
from advguard.models.io import (
    ModelLoadError,
    export_torchscript,
    load_classifier,
    load_model,
    load_torchscript,
    read_holdout_files,
    save_model,
)
from advguard.models.training import (
    HOLDOUT_FRACTION,
    TrainConfig,
    TrainHistory,
    fit_classifier,
    new_model,
    predict_labels,
    predict_logits,
    train_classifier,
)

__all__ = [
    "ARCHITECTURE",
    "HOLDOUT_FRACTION",
    "ConvClassifier",
    "ModelLoadError",
    "ModelSpec",
    "Normalize",
    "TrainConfig",
    "TrainHistory",
    "build_model",
    "export_torchscript",
    "fit_classifier",
    "fold_batchnorm",
    "load_classifier",
    "load_model",
    "load_torchscript",
    "new_model",
    "predict_labels",
    "predict_logits",
    "read_holdout_files",
    "save_model",
    "train_classifier",
]
