"""The adaptive attack on detect-then-classify, and protected accuracy under it.

A detector is only worth what it keeps against an attacker who knows it is there (Carlini &
Wagner 2017, arXiv:1705.07263; Tramèr et al. 2020, arXiv:2002.08347; Bryniarski et al.
2021, arXiv:2106.15023). Judging plain PGD images with the guard measures the detector
against attackers who ignore it; :class:`AdaptiveAttack` attacks both networks at once,
and :func:`protected_accuracy` reports what is left: the fraction of images the guard
either rejects or classifies correctly.

>>> rows = protected_accuracy(guard.classifier, dataset, detector=guard.detector)
>>> print(format_protected_table(rows))
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.attacks import ProgressCallback, format_eps
from advguard.attacks.base import Attack, attack_mode, check_count, check_positive
from advguard.attacks.linf import PGD
from advguard.config import get_settings
from advguard.data.dataset import ImageDataset
from advguard.detection.detector import Detector
from advguard.evaluation.metrics import Finite
from advguard.evaluation.robustness import DEMO_EPSILONS, json_ready
from advguard.models.memory import fitting_batch_size
from advguard.models.training import predict_labels, predict_logits
from advguard.runtime import ResidentCeiling

LEVELS = 255
"""Uploads are 8-bit: every image the attack returns, and every iterate it judges, lies on
the grid ``k/255``."""
DEFAULT_STEPS = 100
"""Steps of the adaptive attack. Ten were too few: its protected accuracy was not monotone
in ε (a larger budget let fewer images through), the sign of an attack still climbing."""
_GRID_TOLERANCE = 1e-4
"""In grey levels: ``(x ± eps)·255`` in float32 misses an integer k by up to ~3e-5; a value
within this of k counts as k (at most 4e-7 beyond ``eps`` in pixel scale)."""


class AdaptiveAttack(Attack):
    """L∞ PGD against a classifier *and* the detector in front of it (detect-then-classify).

    Succeeds on an image when, after 8-bit rounding, the classifier gets it wrong (or, with
    ``targeted=True``, says ``y``) and the detector accepts it (score ≤
    ``detector.threshold``). Each step descends the sum of two hinges, Carlini–Wagner
    style::

        relu(margin + kappa) + detector_weight · relu(logit(score) − logit(threshold)
                                                      + detector_kappa)

    where ``margin`` is the true class's logit minus the best other one (targeted: the best
    other minus the target's) and ``logit(score)`` the detector's log-odds of "adversarial".
    A hinge stops pulling once its side is won with its margin, so the step goes where the
    image still fails. Measured on the brain-MRI guard (``guard-v4``) against the
    "selective" step of Bryniarski et al. (descend the detector's loss while detected, else
    the classifier's), with cross-entropy in place of the classifier hinge, and with the
    detector's exact second-order gradient: no variant did better; the figures are in the
    module's tests and the project notes.

    Iterates are judged as the guard would see them: rounded to 8 bits, inside the ball.
    The loss is evaluated at the rounded image with the rounding passed straight through
    (BPDA), so what is judged is what is differentiated. Per image the attack keeps the
    successful iterate with the widest margin on both sides and returns it, so it never
    reports less than it found; images never broken get the last iterate.

    The detector's features contain the classifier's input gradients for the image's two
    likeliest classes; the attack fixes those classes at the clean image's (else they jump
    from one step to the next and so does the loss). The features hold nothing random
    (the neighbour is a fixed shift), so no expectation over transformations is needed;
    what is not differentiable (8-bit rounding) is passed straight through (BPDA), and the
    median filter is differentiated through the pixel it picks.
    With
    ``second_order=False`` (default) their own derivative is left out (the gradients are
    constants of the backward pass), which is about 3× cheaper per step and was as strong
    as the exact gradient in every measurement; ``second_order=True`` gives the exact one.

    For a preprocessing defense, pass its BPDA wrapper as ``model``
    (``PreprocessingDefense(classifier, name, bpda=True)``): its forward pass is the
    defense's, its backward pass skips the preprocessing. The detector keeps the classifier
    it was built on.

    Not registered in :data:`~advguard.attacks.ATTACKS`: every attack there is built from a
    classifier alone, and this one needs the detector too. With ``detector=None`` it is
    8-bit PGD on the classifier's hinge loss.

    Arguments: ``model`` (classifier, images in [0, 1] → logits), ``detector`` (or
    ``None``), ``eps`` (L∞ budget), ``alpha`` (step; ``None`` = ``eps/4``), ``steps``,
    ``random_start``, ``kappa`` (classifier margin, in logits), ``detector_kappa``
    (detector margin, in log-odds), ``detector_weight``, ``second_order``, ``targeted``,
    ``seed``. Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N; returns N×C×H×W on the 8-bit grid
    (where ``x`` is on it and ``eps`` ≥ 1/255; else pixels without a grid value in reach
    stay as they were).

    >>> attack = AdaptiveAttack(guard.classifier, guard.detector, eps=4 / 255)
    >>> x_adv = attack(images, labels)
    """

    name = "adaptive"

    @classmethod
    def budget_params(
        cls, eps: float | None, norm: str = "linf", **params: Any
    ) -> dict[str, object]:
        """``eps`` and a step of ε/4 whatever ``steps`` (not the registered attacks'
        2.5·ε/steps): the many steps serve the detector's margin, and a step under a grey
        level would vanish in the 8-bit rounding at small budgets."""
        return quarter_step_budget(eps) if norm == "linf" else {}

    def __init__(
        self,
        model: nn.Module,
        detector: Detector | None = None,
        *,
        eps: float = 8 / 255,
        alpha: float | None = None,
        steps: int = DEFAULT_STEPS,
        random_start: bool = True,
        kappa: float = 0.0,
        detector_kappa: float = 1.0,
        detector_weight: float = 1.0,
        second_order: bool = False,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        if detector is not None and not isinstance(detector, Detector):
            raise TypeError(f"detector must be a Detector or None, got {type(detector).__name__}")
        self.detector = detector
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.alpha = max(self.eps / 4, 1e-12) if alpha is None else check_positive("alpha", alpha)
        self.steps = check_count("steps", steps)
        self.random_start = bool(random_start)
        self.kappa = check_positive("kappa", kappa, allow_zero=True)
        self.detector_kappa = check_positive("detector_kappa", detector_kappa, allow_zero=True)
        self.detector_weight = check_positive("detector_weight", detector_weight)
        self.second_order = bool(second_order)
        # The detector shares the classifier's features when it was built on this very
        # module: one pass then gives both networks' outputs.
        self._shared_classifier = detector is not None and detector.features.classifier is model

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "random_start": self.random_start,
            "kappa": self.kappa,
            "detector_kappa": self.detector_kappa,
            "detector_weight": self.detector_weight,
            "second_order": self.second_order,
            "detector": self.detector is not None,
            **super().params(),
        }

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        if self.eps == 0 or len(x) == 0:
            return x.clone()
        frozen = attack_mode(self.detector) if self.detector is not None else nullcontext()
        with frozen:
            return self._search(x, y, generator)

    def _search(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        lower = (x - self.eps).clamp(min=0.0)
        upper = (x + self.eps).clamp(max=1.0)
        grid_lower, grid_upper = grid_ball(x, self.eps)
        x_adv = x
        if self.random_start:
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_adv = torch.clamp(x + (2 * noise - 1) * self.eps, lower, upper)
        classes = None if self.detector is None else self.detector.features.likeliest_classes(x)
        best = x.clone()
        best_margin = torch.full((len(x),), -math.inf, device=x.device)
        ceiling = ResidentCeiling(2 * get_settings().batch_memory_mb << 20)
        for step in range(self.steps + 1):
            ceiling.check()
            rounded = round_into(x_adv.detach(), grid_lower, grid_upper)
            if step == self.steps:  # the last iterate is only judged: no graph to build
                with torch.no_grad():
                    _, success, margin = self._objective(rounded, y, classes)
            else:
                probe = x_adv.detach().requires_grad_(True)
                # Straight-through rounding: judge the 8-bit image, step along its gradient.
                loss, success, margin = self._objective(
                    probe + (rounded - probe).detach(), y, classes
                )
                (gradient,) = torch.autograd.grad(loss, probe)
            improved = success & (margin > best_margin)
            best[improved] = rounded[improved]
            best_margin = torch.where(improved, margin, best_margin)
            if step < self.steps:
                x_adv = torch.add(x_adv, gradient.sign(), alpha=-self.alpha).clamp_(lower, upper)
        never = best_margin == -math.inf
        best[never] = rounded[never]
        return best

    def _objective(
        self, images: Tensor, y: Tensor, classes: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The summed loss to descend, per-image success, and per-image success margin (the
        smaller of the two sides' margins; larger is safer). ``classes``: the detector's
        gradient classes, fixed for the whole attack."""
        log_odds = None
        if self.detector is not None and self._shared_classifier:
            features, logits = self.detector.features.with_logits(
                images, second_order=self.second_order, classes=classes
            )
            log_odds = self.detector.log_odds(features)
        else:
            logits = self.model(images)
            if self.detector is not None:
                features, _ = self.detector.features.with_logits(
                    images, second_order=self.second_order, classes=classes
                )
                log_odds = self.detector.log_odds(features)
        goal = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), -math.inf).amax(1)
        # Positive while the attack has not won on the classifier's side.
        class_margin = others - goal if self.targeted else goal - others
        loss = F.relu(class_margin + self.kappa)
        success = self.is_successful(logits.detach(), y)
        margin = -class_margin.detach()
        if log_odds is not None:
            assert self.detector is not None
            excess = log_odds - threshold_log_odds(self.detector.threshold)
            loss = loss + self.detector_weight * F.relu(excess + self.detector_kappa)
            # Acceptance exactly as Detector.detect decides it (on the score, not log-odds).
            score = log_odds.detach().sigmoid()
            success = success & (score <= self.detector.threshold)
            margin = torch.minimum(margin, -excess.detach())
        return loss.sum(), success, margin


def threshold_log_odds(threshold: float) -> float:
    """``log(t / (1 − t))``, kept finite (a threshold of 0 or 1 rejects all or nothing)."""
    clipped = min(max(threshold, 1e-12), 1 - 1e-12)
    return math.log(clipped) - math.log1p(-clipped)


def grid_ball(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The lowest and highest 8-bit values within ``eps`` of ``x`` and in [0, 1]; where
    there is none (``x`` off the grid and ``eps`` < 1/255), ``x`` itself for both."""
    low = torch.ceil((x - eps).clamp(min=0.0) * LEVELS - _GRID_TOLERANCE) / LEVELS
    high = torch.floor((x + eps).clamp(max=1.0) * LEVELS + _GRID_TOLERANCE) / LEVELS
    empty = low > high
    return torch.where(empty, x, low), torch.where(empty, x, high)


def round_into(images: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Round to the nearest 8-bit value, then into ``[low, high]`` (see :func:`grid_ball`)."""
    return torch.minimum(torch.maximum((images * LEVELS).round() / LEVELS, low), high)


def quarter_step_budget(eps: float | None) -> dict[str, object]:
    """The adaptive table's budget rule: ``eps`` with a step of ``eps/4``."""
    return {} if eps is None else {"eps": eps, "alpha": max(eps / 4, 1e-12)}


class _EightBitPGD(PGD):
    """Registered PGD (cross-entropy, random start), its result rounded into the 8-bit ball.
    Its step follows :class:`AdaptiveAttack`'s rule, so the two rows of a budget differ only
    in what the attacker knows."""

    @classmethod
    def budget_params(
        cls, eps: float | None, norm: str = "linf", **params: Any
    ) -> dict[str, object]:
        return quarter_step_budget(eps) if norm == "linf" else {}

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        return round_into(super()._run(x, y, generator), *grid_ball(x, self.eps))


@dataclass
class ProtectedAccuracy:
    """Classifier (and detector) under one attack budget, over ``images`` images.

    An image is *protected* when the detector rejects it or the classifier gets it right:
    the guard then gives no wrong answer. Rates are fractions of all images, except
    ``attack_success_rate``: among images protected when clean, those the attack left
    accepted and misclassified.
    """

    eps: Finite
    detector: bool
    """Whether a detector was in front of the classifier (else rejection rates are 0)."""
    adaptive: bool
    """Whether the attack knew the detector (else it attacked the classifier alone and the
    guard judged the result)."""
    images: int
    clean_accuracy: float
    clean_protected_accuracy: float
    clean_rejection_rate: float
    accuracy: float
    """The classifier's accuracy on the attacked images, ignoring the detector."""
    protected_accuracy: float
    rejection_rate: float
    attack_success_rate: float
    steps: int
    alpha: Finite
    seconds: Finite
    classifier: str = "classifier"
    """Which classifier (e.g. standard or adversarially trained) the row is about."""

    @property
    def setting(self) -> str:
        if not self.detector:
            return self.classifier
        return f"{self.classifier} + detector, " + ("adaptive" if self.adaptive else "non-adaptive")

    def to_dict(self) -> dict[str, object]:
        return json_ready({**asdict(self), "setting": self.setting})  # type: ignore[return-value]


@dataclass
class _Judgement:
    correct: Tensor
    rejected: Tensor

    @property
    def protected(self) -> Tensor:
        return self.rejected | self.correct


def _judge(
    classifier: nn.Module,
    detector: Detector | None,
    images: Tensor,
    labels: Tensor,
    batch_size: int,
) -> _Judgement:
    """What the guard makes of ``images``, decided exactly as ``Guard.predict`` does."""
    if len(images) == 0:
        nothing = torch.zeros(0, dtype=torch.bool)
        return _Judgement(nothing, nothing)
    if detector is None:
        predictions = predict_labels(classifier, images, batch_size)
        return _Judgement(predictions == labels, torch.zeros(len(images), dtype=torch.bool))
    detection, logits = detector.detect_and_classify(images, batch_size)
    if detector.features.classifier is not classifier:
        logits = predict_logits(classifier, images, batch_size)
    return _Judgement(logits.argmax(1) == labels, detection.is_adversarial)


def protected_accuracy(
    classifier: nn.Module,
    dataset: ImageDataset,
    *,
    detector: Detector | None = None,
    epsilons: Sequence[float] = DEMO_EPSILONS,
    adaptive: bool = True,
    steps: int = DEFAULT_STEPS,
    alpha: float | None = None,
    seed: int = 0,
    batch_size: int = 32,
    name: str = "classifier",
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> list[ProtectedAccuracy]:
    """Protected accuracy of ``classifier`` (behind ``detector``, if given) under
    :class:`AdaptiveAttack` at each budget of ``epsilons``; one row per budget.

    With ``adaptive=False`` the attack ignores the detector (the registered cross-entropy
    PGD, rounded to 8 bits) and the guard judges its images: the number a detector shows
    against attackers who do not know it, to compare with the adaptive one. Without a
    detector both are robust accuracy under the classifier-only attack. ``alpha`` defaults
    to the attacks' own rule (:meth:`AdaptiveAttack.budget_params`: ``eps/4``). For a guard:
    ``protected_accuracy(guard.classifier, dataset, detector=guard.detector)``; for a
    preprocessing defense, pass its BPDA wrapper as ``classifier``.

    ``progress(done, total)`` counts attacked images over all budgets.
    """
    if not epsilons:
        raise ValueError("no budgets to evaluate")
    check_count("batch_size", batch_size)
    images, labels = dataset.images, dataset.labels
    if len(images):
        batch_size = fitting_batch_size(classifier, images.shape[1:], batch_size)
    clean = _judge(classifier, detector, images, labels, batch_size)
    total = len(epsilons) * len(dataset)
    bar = tqdm(total=total, desc="adaptive", unit="img", disable=not show_progress, leave=False)
    done = 0
    rows = []
    for eps in epsilons:
        plain = detector is not None and not adaptive
        # The attacker who ignores the detector runs the plain PGD it was trained on
        # (cross-entropy, every step taken), not the hinge of AdaptiveAttack, which stops
        # moving an image once it is misclassified: a smaller perturbation.
        attack_type = _EightBitPGD if plain else AdaptiveAttack
        settings: dict[str, Any] = {**attack_type.budget_params(eps, steps=steps), "steps": steps}
        if alpha is not None:
            settings["alpha"] = alpha
        attack: Attack = (
            _EightBitPGD(classifier, **settings, seed=seed)
            if plain
            else AdaptiveAttack(classifier, detector if adaptive else None, **settings, seed=seed)
        )
        step = settings["alpha"]
        started = time.perf_counter()
        batches = []
        for begin in range(0, len(dataset), batch_size):
            batches.append(
                attack(images[begin : begin + batch_size], labels[begin : begin + batch_size])
            )
            done += len(batches[-1])
            bar.update(len(batches[-1]))
            if progress is not None:
                progress(done, total)
        attacked = torch.cat(batches) if batches else images.clone()
        after = _judge(classifier, detector, attacked, labels, batch_size)
        broken = clean.protected & ~after.protected
        rows.append(
            ProtectedAccuracy(
                eps=float(eps),
                detector=detector is not None,
                adaptive=adaptive,
                images=len(dataset),
                clean_accuracy=_rate(clean.correct),
                clean_protected_accuracy=_rate(clean.protected),
                clean_rejection_rate=_rate(clean.rejected),
                accuracy=_rate(after.correct),
                protected_accuracy=_rate(after.protected),
                rejection_rate=_rate(after.rejected),
                attack_success_rate=_rate(broken[clean.protected]),
                steps=steps,
                alpha=step,
                seconds=time.perf_counter() - started,
                classifier=name,
            )
        )
    bar.close()
    return rows


def _rate(flags: Tensor) -> float:
    return float(flags.float().mean()) if len(flags) else float("nan")


def format_protected_table(rows: Sequence[ProtectedAccuracy]) -> str:
    """A Markdown table of :func:`protected_accuracy` rows."""
    lines = [
        "| setting | ε | steps | clean acc | clean protected | clean rejected "
        "| acc under attack | protected | rejected | attack success | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.setting} | {format_eps(row.eps)} | {row.steps} | {row.clean_accuracy:.3f} | "
            f"{row.clean_protected_accuracy:.3f} | {row.clean_rejection_rate:.3f} | "
            f"{row.accuracy:.3f} | {row.protected_accuracy:.3f} | {row.rejection_rate:.3f} | "
            f"{row.attack_success_rate:.3f} | {row.seconds:.1f} |"
        )
    return "\n".join(lines)


def evaluate_adaptive(
    classifiers: dict[str, nn.Module],
    dataset: ImageDataset,
    detector: Detector | None,
    *,
    epsilons: Sequence[float] = DEMO_EPSILONS,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> list[ProtectedAccuracy]:
    """The adaptive-attack table: for each named classifier (standard, adversarially
    trained, ...), :func:`protected_accuracy` alone, and behind ``detector`` under the
    attack that ignores it and the one that knows it. ``progress(done, total)`` counts
    attacked images over every setting."""
    settings: list[tuple[str, nn.Module, Detector | None, bool]] = []
    for name, classifier in classifiers.items():
        settings.append((name, classifier, None, True))
        if detector is not None:
            settings += [(name, classifier, detector, False), (name, classifier, detector, True)]
    per_setting = len(epsilons) * len(dataset)
    rows: list[ProtectedAccuracy] = []
    for index, (name, classifier, judge, adaptive) in enumerate(settings):

        def advance(done: int, total: int, offset: int = index * per_setting) -> None:
            if progress is not None:
                progress(offset + done, len(settings) * per_setting)

        rows += protected_accuracy(
            classifier, dataset, detector=judge, epsilons=epsilons, adaptive=adaptive,
            steps=steps, seed=seed, name=name, progress=advance, show_progress=show_progress,
        )  # fmt: skip
    return rows


@dataclass
class AdaptiveSetting:
    """One classifier (behind the detector or not) as curves over ε."""

    name: str
    protected_accuracy: list[float]
    """Under the adaptive attack."""
    non_adaptive: list[float] | None
    """Under the attack that ignores the detector (``None`` without a detector, where the
    two are the same)."""


@dataclass
class AdaptiveSummary:
    """The adaptive table as curves over ε (the web app draws these); ``rows`` keeps every
    measured figure."""

    epsilons: list[Finite]
    images: int
    settings: list[AdaptiveSetting]
    rows: list[ProtectedAccuracy]


def adaptive_summary(rows: Sequence[ProtectedAccuracy]) -> dict[str, object]:
    """An :class:`AdaptiveSummary` of ``rows`` as plain JSON-ready data (rows with their
    ``setting`` label)."""
    epsilons = sorted({row.eps for row in rows})
    # name → adaptive? → protected accuracy per ε
    curves: dict[str, dict[bool, list[float]]] = {}
    for row in rows:
        name = f"{row.classifier} + detector" if row.detector else row.classifier
        by_attack = curves.setdefault(name, {})
        curve = by_attack.setdefault(row.adaptive, [math.nan] * len(epsilons))
        curve[epsilons.index(row.eps)] = row.protected_accuracy
    summary = AdaptiveSummary(
        epsilons=epsilons,
        images=rows[0].images if rows else 0,
        settings=[
            AdaptiveSetting(name, by_attack[True], by_attack.get(False))
            for name, by_attack in curves.items()
        ],
        rows=list(rows),
    )
    plain = {**asdict(summary), "rows": [row.to_dict() for row in rows]}
    return json_ready(plain)  # type: ignore[return-value]


def plot_protected_accuracy(rows: Sequence[ProtectedAccuracy], path: str | Path) -> Path:
    """Protected accuracy against ε, one line per setting, with each setting's clean value
    at ε = 0: a colour per classifier; dotted alone, dashed behind the detector under the
    attack that ignores it, solid under the adaptive attack."""
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(r.classifier for r in rows))}
    for setting in dict.fromkeys(row.setting for row in rows):
        mine = sorted((row for row in rows if row.setting == setting), key=lambda r: r.eps)
        x = [0.0] + [row.eps * 255 for row in mine]
        y = [mine[0].clean_protected_accuracy] + [row.protected_accuracy for row in mine]
        style = ":" if not mine[0].detector else "-" if mine[0].adaptive else "--"
        colour = colours[mine[0].classifier]
        axis.plot(x, y, style, color=colour, marker="o", ms=3, label=setting)
    budgets = sorted({0.0, *(row.eps for row in rows)})
    axis.set_xticks([eps * 255 for eps in budgets], [format_eps(eps) for eps in budgets])
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("ε (L∞, 8-bit images)")
    axis.set_ylabel("protected accuracy (rejected or correct)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    images = rows[0].images if rows else 0
    axis.set_title(f"Adaptive attack on detect-then-classify ({images} images)", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_adaptive_report(rows: Sequence[ProtectedAccuracy], out: str | Path) -> dict[str, str]:
    """Write ``adaptive.json``, ``adaptive.md`` and ``adaptive.png`` into ``out``; return
    the file names by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adaptive.json").write_text(
        json.dumps({"rows": [row.to_dict() for row in rows]}, indent=2)
    )
    seconds = sum(row.seconds for row in rows)
    (out / "adaptive.md").write_text(
        "# Adaptive attack: protected accuracy\n\n"
        "An image is protected when the guard rejects it or classifies it correctly. "
        "*Non-adaptive*: PGD on the classifier alone, judged by the guard. *Adaptive*: PGD "
        "on a joint loss (be misclassified and look clean to the detector), every iterate "
        f"rounded to 8 bits. {seconds:.0f} s in all.\n\n"
        + format_protected_table(rows)
        + "\n\n![adaptive](adaptive.png)\n"
    )
    plot_protected_accuracy(rows, out / "adaptive.png")
    return {"json": "adaptive.json", "markdown": "adaptive.md", "plot": "adaptive.png"}
