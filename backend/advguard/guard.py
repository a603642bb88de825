"""Detect-then-classify: clean images get the classifier's answer, adversarial ones are
rejected with the attack named.

>>> guard = Guard.load("out/guard")
>>> verdicts = guard.predict(images)          # N×C×H×W in [0, 1]
>>> verdicts[0].label, verdicts[0].attack
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from advguard.data.appearance import AppearanceRange
from advguard.detection.detector import Detector
from advguard.models import (
    ModelLoadError,
    ModelSpec,
    export_torchscript,
    fold_batchnorm,
    load_classifier,
    save_model,
)

CLASSIFIER_DIR = "classifier"
TORCHSCRIPT_FILE = "classifier.pt"
DETECTOR_DIR = "detector"
APPEARANCE_FILE = "appearance.json"


@dataclass
class Verdict:
    """The guard's answer for one image."""

    is_adversarial: bool
    score: float
    """Probability that the image is adversarial."""
    attack: str | None
    """Likeliest attack when rejected, else ``None``."""
    attack_probabilities: dict[str, float]
    label: str | None
    """The classifier's class when accepted, ``None`` when rejected."""
    class_probabilities: dict[str, float]
    unlike_training: list[str] | None = None
    """How the image differs from the scans the guard was fitted on (measures outside
    their range, :class:`~advguard.data.appearance.AppearanceRange`); empty when it looks
    like them, ``None`` for a guard saved without those ranges."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class Guard:
    """A classifier and the detector in front of it, saved and loaded as one folder.

    ``guard.classifier`` is the plain ``nn.Module`` (images in [0, 1] → logits), so any
    attack library can attack it.
    """

    def __init__(
        self,
        classifier: nn.Module,
        spec: ModelSpec,
        detector: Detector,
        *,
        appearance: AppearanceRange | None = None,
        serving: bool = False,
    ) -> None:
        self.classifier = classifier
        self.spec = spec
        self.detector = detector
        self.appearance = appearance
        """What the scans it was fitted on look like (``None``: not recorded)."""
        self.serving = serving
        """Loaded with ``serving=True``: the classifier's BatchNorms are folded away."""

    @property
    def threshold(self) -> float:
        return self.detector.threshold

    @torch.no_grad()
    def predict(self, images: Tensor) -> list[Verdict]:
        """One :class:`Verdict` per image of ``images`` (``N×C×H×W`` in [0, 1])."""
        if images.ndim != 4 or images.shape[1] != self.spec.in_channels:
            raise ValueError(
                f"expected N×{self.spec.in_channels}×H×W images, got {tuple(images.shape)}"
            )
        # The detector's features already ran the classifier on the images: reuse its logits.
        detection, class_logits = self.detector.detect_and_classify(images)
        self.classifier.eval()
        class_probabilities = class_logits.softmax(1)
        predicted = class_probabilities.argmax(1)
        attacks = self.detector.attack_names
        unlike = None if self.appearance is None else self.appearance.differences(images)
        verdicts = []
        for i in range(len(images)):
            rejected = bool(detection.is_adversarial[i])
            probabilities = class_probabilities[i].tolist()
            verdicts.append(
                Verdict(
                    is_adversarial=rejected,
                    score=float(detection.score[i]),
                    attack=attacks[int(detection.attack_index[i])] if rejected else None,
                    attack_probabilities={
                        name: float(p)
                        for name, p in zip(attacks, detection.probabilities[i, 1:], strict=True)
                    },
                    label=None if rejected else self.spec.class_names[int(predicted[i])],
                    class_probabilities=dict(
                        zip(self.spec.class_names, probabilities, strict=True)
                    ),
                    unlike_training=None if unlike is None else unlike[i],
                )
            )
        return verdicts

    def save(self, directory: str | Path) -> Path:
        """Write the classifier (safetensors + JSON, or TorchScript) and the detector."""
        if self.serving:
            raise ValueError("a guard loaded with serving=True cannot be saved; load it again")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(self.classifier, torch.jit.ScriptModule):
            export_torchscript(self.classifier, self.spec, directory / TORCHSCRIPT_FILE)
        else:
            save_model(self.classifier, self.spec, directory / CLASSIFIER_DIR)
        self.detector.save(directory / DETECTOR_DIR)
        if self.appearance is not None:
            self.appearance.save(directory / APPEARANCE_FILE)
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, device: str | torch.device = "cpu", *, serving: bool = False
    ) -> Guard:
        """Load a guard written by :meth:`save`; nothing is unpickled.

        ``serving=True`` folds the classifier's BatchNorms into its convolutions
        (:func:`~advguard.models.fold_batchnorm`): same answers, faster predict and
        attacks, but the classifier can no longer be trained or saved as it was.
        """
        directory = Path(directory)
        script = directory / TORCHSCRIPT_FILE
        classifier, spec = load_classifier(
            script if script.exists() else directory / CLASSIFIER_DIR, device=device
        )
        if spec is None:
            raise ModelLoadError(f"{script} has no embedded model description")
        if serving:
            classifier = fold_batchnorm(classifier)
        detector = Detector.load(directory / DETECTOR_DIR, classifier).to(device)
        appearance_file = directory / APPEARANCE_FILE
        try:
            appearance = AppearanceRange.load(appearance_file) if appearance_file.exists() else None
        except ValueError as error:
            raise ModelLoadError(str(error)) from error
        return cls(classifier, spec, detector, appearance=appearance, serving=serving)
