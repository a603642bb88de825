"""Shared fixtures: a small classifier trained once per session on the bundled set, and an
adversarial set and a detector built on it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from advguard.data import ImageDataset, real_mri_path, split_holdout
from advguard.data.synthetic import make_bundled_dataset
from advguard.detection import (
    AdversarialSet,
    AttackSpec,
    BuildConfig,
    Detector,
    DetectorConfig,
    build_adversarial_set,
    train_detector,
)
from advguard.models import ModelSpec, TrainConfig, build_model, predict_logits, train_classifier
from advguard.runtime import configure_threads, tune_glibc_malloc

configure_threads(2)
tune_glibc_malloc()  # about 2× faster attack and training steps (see advguard.runtime)


@dataclass
class TrainedModel:
    model: nn.Module
    spec: ModelSpec
    test: ImageDataset
    correct: ImageDataset  # test images the model classifies correctly


@pytest.fixture(scope="session")
def small_bundled() -> dict[str, ImageDataset]:
    """The bundled synthetic set at 32×32, small enough for unit tests."""
    return make_bundled_dataset(image_size=32, seed=0)


@pytest.fixture(scope="session")
def trained_small(small_bundled: dict[str, ImageDataset]) -> TrainedModel:
    """A compact CNN trained for a few seconds on the 32×32 bundled set."""
    train, val = split_holdout(small_bundled["train"], 0.15, seed=0)
    spec = ModelSpec(class_names=train.class_names, image_size=32, width=8, stage_convs=[1, 1, 1])
    # The initial weights come from the global generator: seeded, the fixture is the same
    # model in every run (unseeded it ranged from 105 to 134 of 200 test images right, and
    # thresholds on attack success flaked).
    torch.manual_seed(0)
    model = build_model(spec)
    train_classifier(
        model,
        train,
        val,
        # The best epoch, not the moving average: the attack and defense tests' thresholds
        # were measured on this model.
        TrainConfig(epochs=15, batch_size=32, patience=15, augment=0.0, ema_decay=0.0),
        show_progress=False,
    )
    test = small_bundled["test"]
    predictions = predict_logits(model, test.images).argmax(1)
    correct = test.subset(torch.nonzero(predictions == test.labels).squeeze(1))
    return TrainedModel(model=model, spec=spec, test=test, correct=correct)


DETECTOR_EPS = 8 / 255


@dataclass
class Built:
    adversarial: AdversarialSet
    folder: object
    model: nn.Module
    spec: ModelSpec
    specs: list[AttackSpec]
    eps: float  # the L∞ budget of the set's attacks and noise controls


@pytest.fixture(scope="session")
def built(trained_small, small_bundled, tmp_path_factory) -> Built:
    """An adversarial set (FGSM, PGD, CW and the controls) on half the 32×32 bundled set."""
    eps = DETECTOR_EPS
    specs = [
        AttackSpec("fgsm", {"eps": eps}),
        AttackSpec("pgd", {"eps": eps, "alpha": eps / 4}),
        AttackSpec("cw", {"steps": 20, "binary_search_steps": 2}),
    ]
    folder = tmp_path_factory.mktemp("adversarial-set")
    splits = {name: small_bundled[name] for name in ("train", "test")}
    adversarial = build_adversarial_set(
        trained_small.model,
        splits,
        folder,
        BuildConfig(specs=specs, fraction=0.5, noise_epsilons=[eps]),
        show_progress=False,
    )
    return Built(adversarial, folder, trained_small.model, trained_small.spec, specs, eps)


@pytest.fixture(scope="session")
def trained_detector(built) -> tuple[Detector, torch.Tensor]:
    """A detector trained on ``built`` in front of ``trained_small``, and the set's features."""
    return train_detector(
        built.model, built.adversarial, DetectorConfig(epochs=80), show_progress=False
    )


@pytest.fixture(scope="session")
def real_mri_dir():
    """The real brain-MRI set beside the repository; tests skip when it is absent."""
    path = real_mri_path()
    if not (path / "train").is_dir():
        pytest.skip(f"real MRI data not found at {path} (set ADVGUARD_SHARED_DATA_DIR)")
    return path
