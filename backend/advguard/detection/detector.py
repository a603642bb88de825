"""The detector: is an image adversarial, and which attack made it.

Two parts look at the same :class:`DetectorFeatures`. A small MLP (the head), trained on
the adversarial set, has one output for ``clean`` and one per attack: it names the attack.
A Gaussian fitted on clean images alone (:class:`CleanDensity`) flags whatever falls
outside what clean scans do to the classifier, attacks the head never saw included. The
density decides and the head adds its evidence beyond its own clean tail
(:meth:`Detector.log_odds`); the operating threshold on the combined score is chosen on
out-of-fold clean images for a target false-rejection rate and saved with the weights
(safetensors + JSON, never pickle).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.detection.builder import CLEAN, AdversarialSet, ProgressCallback, silent_if_none
from advguard.detection.density import CleanDensity
from advguard.detection.features import DetectorFeatures
from advguard.models.memory import fitting_batch_size

WEIGHTS_FILE = "detector.safetensors"
CONFIG_FILE = "detector.json"
SHARPNESS = 4.0
"""Log-odds per unit of the clean scale: an image at the density's clean median scores
1 / (1 + e⁴) ≈ 0.02, one at its clean tail quantile 0.5."""
TAIL_QUANTILE = 0.99
"""Each part's clean scale runs from its median (−1) to this quantile (0) of the
out-of-fold clean scores."""
HEAD_WEIGHT = 0.25
"""How much of the head's score beyond its clean tail is added to the density's. Measured
on brain-mri-4class (held-out clean test scans against successful attacks): the head alone
rejected 4.6 % of clean test scans at a 2 % target (its out-of-fold clean scores run lower
than new scans') and scored Square 0.81 AUROC; the density alone 1.3 % and 0.987; the
larger of the two 4.0 % and 0.959; the density plus 0.1–0.5 of the head's excess 1.3–1.7 %
and 0.986–0.987, with BIM and PGD at 2/255 up from 0.996 to 0.997–0.998."""


class DetectorLoadError(ValueError):
    """A detector folder that cannot be loaded; the message says why."""


@dataclass
class DetectorConfig:
    """Hyper-parameters of the detector head and its training."""

    hidden: list[int] = field(default_factory=lambda: [256, 128])
    dropout: float = 0.1
    epochs: int = 150
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    target_false_rejection: float = 0.02
    threshold_folds: int = 5
    """The threshold is set on out-of-fold scores of the train split's clean images from
    this many extra heads (see :func:`out_of_fold_clean_scores`)."""
    seed: int = 0


class DetectorHead(nn.Module):
    """Standardises the features, then an MLP to ``1 + len(attack_names)`` logits."""

    feature_mean: Tensor
    feature_std: Tensor

    def __init__(self, in_features: int, outputs: int, hidden: list[int], dropout: float):
        super().__init__()
        self.outputs = outputs
        self.register_buffer("feature_mean", torch.zeros(in_features))
        self.register_buffer("feature_std", torch.ones(in_features))
        layers: list[nn.Module] = []
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.mlp((features - self.feature_mean) / self.feature_std)


@dataclass
class Detection:
    """The detector's answer for a batch (tensors of length N; ``probabilities`` N×K)."""

    score: Tensor
    is_adversarial: Tensor
    attack_index: Tensor
    probabilities: Tensor


class Detector(nn.Module):
    """Classifier-aware detector; ``forward`` gives the head's logits over
    ``["clean", *attacks]``, :meth:`log_odds` the combined score."""

    clean_scale: Tensor

    def __init__(
        self,
        classifier: nn.Module,
        num_classes: int,
        attack_names: list[str],
        config: DetectorConfig | None = None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        self.config = config or DetectorConfig()
        self.attack_names = list(attack_names)
        self.threshold = threshold
        self.features = DetectorFeatures(classifier, num_classes)
        self.head = DetectorHead(
            self.features.dim, 1 + len(attack_names), self.config.hidden, self.config.dropout
        )
        self.density = CleanDensity(self.features.classifier_columns)
        # Per part (head, density): the clean median and tail quantile of its score.
        self.register_buffer("clean_scale", torch.tensor([[0.0, 1.0], [0.0, 1.0]]))

    @property
    def outputs(self) -> list[str]:
        return [CLEAN, *self.attack_names]

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    def log_odds(self, features: Tensor, head_logits: Tensor | None = None) -> Tensor:
        """The combined, differentiable log-odds of being adversarial for ``features``
        (``head_logits`` when already computed): the clean density's score plus
        :data:`HEAD_WEIGHT` times the head's log-odds beyond its clean tail, each on its
        clean scale (:meth:`calibrate`). A detector saved before the density existed answers
        with the head's log-odds alone."""
        head_logits = self.head(features) if head_logits is None else head_logits
        if not self.density.fitted:
            return head_log_odds(head_logits)
        return self.combine(head_log_odds(head_logits), self.density(features))

    def combine(self, head_log_odds: Tensor, density_scores: Tensor) -> Tensor:
        """:meth:`log_odds` from its two parts' scores.

        The density alone decides what is unusual, so an attack the head never saw is
        judged as any other; the head can only add (a score it finds clean-looking takes
        nothing away)."""
        return combine_scores(head_log_odds, density_scores, self.clean_scale)

    def calibrate(self, head_log_odds: Tensor, density_scores: Tensor) -> None:
        """Set each part's clean scale from its out-of-fold scores on clean images."""
        for row, scores in enumerate((head_log_odds, density_scores)):
            values = scores.double().numpy()
            self.clean_scale[row, 0] = float(np.median(values))
            self.clean_scale[row, 1] = float(np.quantile(values, TAIL_QUANTILE))

    @torch.no_grad()
    def detect(self, images: Tensor, batch_size: int = 256) -> Detection:
        """Score, verdict at the saved threshold, likeliest attack and all probabilities."""
        return self.detect_and_classify(images, batch_size)[0]

    @torch.no_grad()
    def detect_and_classify(
        self, images: Tensor, batch_size: int = 256
    ) -> tuple[Detection, Tensor]:
        """:meth:`detect`, and the classifier's logits for ``images`` (``N×classes``, on the
        CPU) from the same pass: the features run the classifier on the images anyway."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        outputs, class_logits, log_odds = [], [], []
        if len(images):
            batch_size = fitting_batch_size(self.features.classifier, images.shape[1:], batch_size)
        try:
            for start in range(0, len(images), batch_size):
                features, logits = self.features.with_logits(
                    images[start : start + batch_size].to(device)
                )
                head_logits = self.head(features)
                outputs.append(head_logits.cpu())
                log_odds.append(self.log_odds(features, head_logits).cpu())
                class_logits.append(logits.cpu())
        finally:
            self.train(was_training)
        if outputs:
            probabilities = torch.cat(outputs).softmax(1)
            logits = torch.cat(class_logits)
            score = torch.cat(log_odds).sigmoid()
        else:
            probabilities = torch.empty(0, len(self.outputs))
            logits = torch.empty(0, self.features.num_classes)
            score = torch.empty(0)
        detection = Detection(
            score=score,
            is_adversarial=score > self.threshold,
            attack_index=probabilities[:, 1:].argmax(1),
            probabilities=probabilities,
        )
        return detection, logits

    def save(self, directory: str | Path) -> Path:
        """Write the head's weights and a JSON description (not the classifier)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        parts = {"": self.head, "density.": self.density}
        state = {
            prefix + k: v.detach().contiguous().cpu()
            for prefix, part in parts.items()
            for k, v in part.state_dict().items()
        }
        state["clean_scale"] = self.clean_scale.detach().contiguous().cpu()
        save_file(state, str(directory / WEIGHTS_FILE))
        description = {
            "attack_names": self.attack_names,
            "num_classes": self.features.num_classes,
            "threshold": self.threshold,
            "feature_dim": self.features.dim,
            "config": asdict(self.config),
        }
        (directory / CONFIG_FILE).write_text(json.dumps(description, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, classifier: nn.Module) -> Detector:
        """Load a detector saved by :meth:`save` on top of ``classifier`` (no unpickling)."""
        directory = Path(directory)
        try:
            description = json.loads((directory / CONFIG_FILE).read_text())
            detector = cls(
                classifier,
                description["num_classes"],
                description["attack_names"],
                DetectorConfig(**description["config"]),
                float(description["threshold"]),
            )
            if detector.features.dim != description["feature_dim"]:
                raise ValueError("it was saved by a version with other features")
            state = load_file(str(directory / WEIGHTS_FILE))
            # Detectors saved before the clean density have the head's weights alone.
            density = {
                k[len("density.") :]: state.pop(k) for k in list(state) if k.startswith("density.")
            }
            if density:
                detector.density.load_state_dict(density)
                detector.clean_scale.copy_(state.pop("clean_scale"))
            detector.head.load_state_dict(state)
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as error:
            raise DetectorLoadError(f"cannot load a detector from {directory}: {error}") from error
        return detector.eval()


@torch.no_grad()
def extract_features(
    features: DetectorFeatures,
    images: Tensor,
    batch_size: int = 128,
    progress: Callable[[int, int], None] | None = None,
    show_progress: bool = True,
) -> Tensor:
    """Features of ``images`` (uint8 or float in [0, 1]), batched, with a progress bar."""
    features.classifier.eval()
    if len(images):
        batch_size = fitting_batch_size(features.classifier, images.shape[1:], batch_size)
    outputs = []
    bar = tqdm(
        total=len(images), desc="features", unit="img", disable=not show_progress, leave=False
    )
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch
        outputs.append(features(batch))
        bar.update(len(batch))
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    bar.close()
    return torch.cat(outputs) if outputs else torch.empty(0, features.dim)


def group_split(groups: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Positions of a (1 − fraction, fraction) split that keeps each group on one side."""
    unique = groups.unique()
    generator = torch.Generator().manual_seed(seed)
    held = unique[torch.randperm(len(unique), generator=generator)[: round(len(unique) * fraction)]]
    in_held = torch.isin(groups, held)
    return torch.nonzero(~in_held).squeeze(1), torch.nonzero(in_held).squeeze(1)


def fit_head(
    head: DetectorHead,
    features: Tensor,
    targets: Tensor,
    val_features: Tensor,
    val_targets: Tensor,
    config: DetectorConfig,
    progress: Callable[[int, int], None] | None = None,
) -> DetectorHead:
    """Train ``head`` with class-balanced cross-entropy; keep the best validation epoch.
    ``progress(epoch, epochs)`` after each epoch."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    head.feature_mean.copy_(features.mean(0))
    head.feature_std.copy_(features.std(0).clamp_min(1e-6))
    outputs = head.outputs
    counts = torch.bincount(targets, minlength=outputs).float()
    weights = torch.where(counts > 0, counts.sum() / (outputs * counts.clamp_min(1)), 0.0)
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = config.epochs * math.ceil(len(features) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=steps
    )
    best_loss, best_state = float("inf"), copy.deepcopy(head.state_dict())
    for epoch in range(config.epochs):
        head.train()
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), config.batch_size):
            index = order[start : start + config.batch_size]
            loss = F.cross_entropy(head(features[index]), targets[index], weight=weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        head.eval()
        with torch.no_grad():
            val_loss = float(F.cross_entropy(head(val_features), val_targets, weight=weights))
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(head.state_dict())
        if progress is not None:
            progress(epoch + 1, config.epochs)
    head.load_state_dict(best_state)
    return head.eval()


def clean_threshold(clean_scores: Tensor, target_false_rejection: float) -> float:
    """The smallest threshold that rejects at most ``target_false_rejection`` of the clean
    images (a score must be strictly above it to be rejected)."""
    if len(clean_scores) == 0:
        raise ValueError("no clean images to choose the threshold on")
    return float(np.quantile(clean_scores.numpy(), 1 - target_false_rejection, method="higher"))


def validation_split(adversarial: AdversarialSet, config: DetectorConfig) -> tuple[Tensor, Tensor]:
    """Rows of ``adversarial``'s train split that fit the head, and the ``val_fraction``
    held out for early stopping and the threshold, split by source image (an image and all
    its attacked versions on one side)."""
    train_rows = adversarial.where(lambda row: row.split == "train")
    if len(train_rows) == 0:
        raise ValueError("the adversarial set has no train split")
    sources = torch.tensor([adversarial.rows[i].source_id for i in train_rows.tolist()])
    fit_part, val_part = group_split(sources, config.val_fraction, config.seed)
    return train_rows[fit_part], train_rows[val_part]


def combine_scores(
    head_log_odds: Tensor,
    density_scores: Tensor,
    clean_scale: Tensor,
    head_weight: float = HEAD_WEIGHT,
    sharpness: float = SHARPNESS,
) -> Tensor:
    """:meth:`Detector.combine` with the detector's ``clean_scale`` (scriptable, for the
    exported guard: the constants are arguments, as TorchScript cannot read globals)."""
    parts = torch.stack([head_log_odds, density_scores], 1)
    median, tail = clean_scale[:, 0], clean_scale[:, 1]
    scaled = (parts - tail) / (tail - median).clamp_min(1e-6)
    head, density = scaled[:, 0], scaled[:, 1]
    return (density + head_weight * head.clamp_min(0)) * sharpness


def head_log_odds(head_logits: Tensor) -> Tensor:
    """The head's log-odds of an image being adversarial: log P(any attack) − log P(clean)."""
    return head_logits[:, 1:].logsumexp(1) - head_logits[:, 0]


def out_of_fold_clean_scores(
    features: Tensor,
    targets: Tensor,
    adversarial: AdversarialSet,
    config: DetectorConfig,
    density_columns: list[int],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Both parts' scores for every clean image of the train split, each from a head and
    a clean density (on ``density_columns``) that never saw it: the head's log-odds and
    the density's score.

    The train split's source images are dealt into ``config.threshold_folds`` folds (an
    image and all its attacked versions in one fold); a head fits the other folds (with a
    ``val_fraction`` of them for early stopping), a density their clean images, and both
    score the fold's clean images. Only clean images count, not the controls: those score
    far lower than clean scans and would put the threshold at a higher quantile than the
    target. The threshold then rests on every held-out clean image rather than on the
    fifth the main head did not fit: on brain-mri-4class that fifth (163 scans) put it
    where 3.5 % of the other held-out scans and 5.0 % of the test scans were rejected for a
    2 % target, the folds where 1.7 % of the test scans were.
    """
    train_rows = adversarial.where(lambda row: row.split == "train")
    sources = torch.tensor([adversarial.rows[i].source_id for i in train_rows.tolist()])
    is_clean = torch.tensor([adversarial.rows[i].attack == CLEAN for i in train_rows.tolist()])
    unique = sources.unique()
    generator = torch.Generator().manual_seed(config.seed)
    folds = unique[torch.randperm(len(unique), generator=generator)].chunk(config.threshold_folds)
    outputs = 1 + len(adversarial.attack_names)
    head_scores, density_scores = [], []
    for number, fold in enumerate(folds):
        inside = torch.isin(sources, fold)
        rest = train_rows[~inside]
        fit_part, val_part = group_split(sources[~inside], config.val_fraction, config.seed)
        torch.manual_seed(config.seed + number)  # the fold head's initial weights
        head = fit_head(
            DetectorHead(features.shape[1], outputs, config.hidden, config.dropout),
            features[rest[fit_part]],
            targets[rest[fit_part]],
            features[rest[val_part]],
            targets[rest[val_part]],
            config,
        )
        density = CleanDensity(density_columns).fit(features[train_rows[~inside & is_clean]])
        held_clean = features[train_rows[inside & is_clean]]
        with torch.no_grad():
            head_scores.append(head_log_odds(head(held_clean)))
            density_scores.append(density(held_clean))
        if progress is not None:
            progress(number + 1, len(folds))
    return torch.cat(head_scores), torch.cat(density_scores)


DETECTOR_STAGES = ("detector features", "training the detector", "calibrating the threshold")
"""What :func:`train_detector` goes through, in order, as its progress says."""


def train_detector(
    classifier: nn.Module,
    adversarial: AdversarialSet,
    config: DetectorConfig | None = None,
    *,
    features: Tensor | None = None,
    show_progress: bool = True,
    progress: ProgressCallback | None = None,
) -> tuple[Detector, Tensor]:
    """Train a detector on the ``train`` rows of ``adversarial``; return it and the features
    of every row (reports reuse them instead of computing them again).

    A ``val_fraction`` of the source images (with all their attacked versions) is held
    out for early stopping; the clean density is fitted on the split's clean images (not
    the controls); the parts' clean scales and the threshold, for
    ``target_false_rejection``, are set on out-of-fold scores of every clean training image
    (:func:`out_of_fold_clean_scores`).
    ``features`` may be passed when already extracted for every row.
    ``progress(stage, done, total)`` goes through :data:`DETECTOR_STAGES`.
    """
    config = config or DetectorConfig()
    say = silent_if_none(progress)
    detector = Detector(classifier, len(adversarial.class_names), adversarial.attack_names, config)
    if features is None:
        features = extract_features(
            detector.features,
            adversarial.images,
            progress=lambda done, total: say(DETECTOR_STAGES[0], done, total),
            show_progress=show_progress,
        )
    fit_index, val_index = validation_split(adversarial, config)
    targets = adversarial.detector_targets()
    fit_head(
        detector.head,
        features[fit_index],
        targets[fit_index],
        features[val_index],
        targets[val_index],
        config,
        progress=lambda epoch, epochs: say(DETECTOR_STAGES[1], epoch, epochs),
    )
    clean_train = adversarial.where(lambda row: row.split == "train" and row.attack == CLEAN)
    detector.density.fit(features[clean_train])
    head_scores, density_scores = out_of_fold_clean_scores(
        features,
        targets,
        adversarial,
        config,
        detector.density.columns,
        progress=lambda fold, folds: say(DETECTOR_STAGES[2], fold, folds),
    )
    detector.calibrate(head_scores, density_scores)
    with torch.no_grad():
        scores = detector.combine(head_scores, density_scores).sigmoid()
    detector.threshold = clean_threshold(scores, config.target_false_rejection)
    return detector.eval(), features
