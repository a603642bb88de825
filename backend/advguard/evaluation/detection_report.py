"""The detector's report: per-attack ROC/AUROC, TPR at the operating threshold, the
attack-type confusion matrix, leave-one-attack-out AUROC and the baselines, as JSON,
Markdown and PNG plots. Every metric comes from scikit-learn.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from advguard.attacks import ATTACKS, create_attack, format_eps, run_attack
from advguard.data.dataset import ImageDataset
from advguard.detection.baselines import FeatureSqueezing, Mahalanobis
from advguard.detection.builder import (
    CLEAN,
    CONTROLS,
    AdversarialSet,
    ManifestRow,
    ProgressCallback,
    attack_family,
    silent_if_none,
)
from advguard.detection.detector import Detector, extract_features, train_detector
from advguard.evaluation.metrics import Finite, plot_confusion
from advguard.evaluation.robustness import RobustnessRow, json_ready

REPORT_STAGES = ("detector features", "baselines", "leave-one-out", "unseen attacks")
"""What :func:`build_detection_report` goes through, in order, as its progress says."""


def _sklearn_metrics() -> ModuleType:
    """``sklearn.metrics``, imported on first use: scikit-learn takes seconds to load, and
    every CLI command (``--help`` too) and service process imports this module."""
    import sklearn.metrics

    return sklearn.metrics


def auroc(clean_scores: Tensor, attack_scores: Tensor) -> float:
    """AUROC of separating attacked from clean images (NaN when either side is empty)."""
    if len(clean_scores) == 0 or len(attack_scores) == 0:
        return float("nan")
    truth = np.r_[np.zeros(len(clean_scores)), np.ones(len(attack_scores))]
    return float(
        _sklearn_metrics().roc_auc_score(truth, np.r_[clean_scores.numpy(), attack_scores.numpy()])
    )


def _mean(values: Tensor) -> float:
    return float(values.float().mean()) if len(values) else float("nan")


@dataclass
class ReportRow:
    """One attack at one budget on the test split. *Successful* images were classified
    correctly before the attack and wrongly after; *failed* ones stayed correct. Images the
    classifier already got wrong count only in the columns for all images."""

    attack: str
    eps: str
    images: int
    successful: int
    auroc: float
    auroc_successful: float
    auroc_failed: float
    tpr: float
    tpr_successful: float
    tpr_failed: float
    named_successful: float
    baselines: dict[str, float] = field(default_factory=dict)


UNSEEN_ATTACKS = ("deepfool", "apgd", "square")
"""Attacks the default detector never trains on; the report measures it on them."""
UNSEEN_EPS = 8 / 255


@dataclass
class UnseenAttackRow:
    """An attack the detector never saw in training, run on clean test images (8-bit)."""

    attack: str
    eps: str
    images: int
    successful: int
    auroc: float
    auroc_successful: float
    tpr: float
    tpr_successful: float
    seconds: Finite


@dataclass
class LeaveOneOutRow:
    """A trained attack as if it were new: a detector retrained without it, judged on it."""

    attack: str
    auroc: float
    """All its test images, every budget, against the clean test images."""
    auroc_successful: float
    tpr_successful: float
    """Successful attacks rejected at the retrained detector's own threshold."""
    clean_false_rejection: float
    """Clean test images the retrained detector rejects."""


@dataclass
class RocCurve:
    """One ROC curve: false- and true-positive rates, and the exact area under it."""

    fpr: list[Finite]
    tpr: list[Finite]
    auroc: float


@dataclass
class DetectionReport:
    """Everything the report says; ``to_dict`` is what ``report.json`` holds."""

    threshold: Finite
    clean_images: int
    clean_false_rejection: float
    noise_false_rejection: dict[str, float]
    rows: list[ReportRow]
    per_attack_auroc: dict[str, float]
    leave_one_out: list[LeaveOneOutRow]
    attack_names: list[str]
    confusion_labels: list[str]
    """``["clean", *attack_names]``: the rows and columns of :attr:`guard_confusion`."""
    guard_confusion: list[list[int]]
    """What the guard answered (columns: accepted as clean, or rejected naming an attack)
    for each clean test image and each successful adversarial one (rows: what it was)."""
    naming_accuracy: float
    family_accuracy: float
    guard_accuracy_clean: float
    seconds: Finite
    unseen: list[UnseenAttackRow] = field(default_factory=list)
    """Attacks absent from the detector's training, scored against the clean test images."""
    roc_curves: dict[str, dict[str, RocCurve]] = field(default_factory=dict)
    """Per scorer (the detector and each baseline) and attack: ``fpr`` and ``tpr`` points
    of the ROC curve against clean test images (at most ``ROC_POINTS``)."""

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready data; undefined numbers (NaN) become ``None``."""
        plain = json.loads(json.dumps(self, default=lambda o: o.__dict__))
        return json_ready(plain)  # type: ignore[return-value]


class ScoredTestSplit:
    """The test rows of an adversarial set with the scores of every detector."""

    def __init__(self, adversarial: AdversarialSet, index: Tensor, scores: dict[str, Tensor]):
        self.rows = [adversarial.rows[i] for i in index.tolist()]
        self.index = index
        self.scores = scores

    def mask(self, predicate: Callable[[ManifestRow], bool]) -> Tensor:
        return torch.tensor([predicate(row) for row in self.rows], dtype=torch.bool)

    def made_by(self, attack: str) -> Tensor:
        """Rows whose ``attack`` column is ``attack`` (also ``clean`` or a noise control)."""
        return torch.tensor([row.attack == attack for row in self.rows], dtype=torch.bool)


def flipped(row: ManifestRow) -> bool:
    """A successful attack in the report's sense: it turned a correct answer wrong."""
    return row.success and row.predicted_before == row.true_label


def _group_key(row: ManifestRow) -> tuple[str, str]:
    return row.attack, format_eps(None if math.isnan(row.eps) else row.eps)


def build_detection_report(
    detector: Detector,
    adversarial: AdversarialSet,
    *,
    features: Tensor | None = None,
    baselines: bool = True,
    leave_one_out: bool = True,
    unseen_attacks: Sequence[str] = (),
    unseen_images: int = 100,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> tuple[DetectionReport, ScoredTestSplit]:
    """Measure ``detector`` on the test rows of ``adversarial``.

    ``features`` (one row per image of the set, as :func:`extract_features` gives) saves
    recomputing them; leave-one-attack-out retrains the head on the train rows without
    each attack in turn and scores that attack on the test rows. Each of
    ``unseen_attacks`` (those the detector was not trained on) attacks ``unseen_images``
    clean test images, and is scored against all clean test images.

    ``progress(stage, done, total)`` goes through :data:`REPORT_STAGES` (those asked for).
    """
    started = time.perf_counter()
    say = silent_if_none(progress)
    test_index = adversarial.where(lambda row: row.split == "test")
    if len(test_index) == 0:
        raise ValueError("the adversarial set has no test split")
    if features is None:
        features = extract_features(
            detector.features,
            adversarial.images,
            progress=lambda done, total: say(REPORT_STAGES[0], done, total),
            show_progress=show_progress,
        )
    with torch.no_grad():
        head_logits = detector.head.eval()(features[test_index])
        probabilities = head_logits.softmax(1)
        scores = {"detector": detector.log_odds(features[test_index], head_logits).sigmoid()}
    test_images = adversarial.float_images(test_index)
    if baselines:
        say(REPORT_STAGES[1], 0, 2)
        classifier = detector.features.classifier
        scores["feature squeezing"] = FeatureSqueezing(classifier).score(test_images)
        say(REPORT_STAGES[1], 1, 2)
        clean_train = adversarial.where(lambda r: r.split == "train" and r.attack == CLEAN)
        labels = torch.tensor(
            [adversarial.class_names.index(adversarial.rows[i].true_label) for i in clean_train]
        )
        mahalanobis = Mahalanobis(classifier).fit(
            adversarial.float_images(clean_train), labels, len(adversarial.class_names)
        )
        scores["mahalanobis"] = mahalanobis.score(test_images)
        say(REPORT_STAGES[1], 2, 2)
    view = ScoredTestSplit(adversarial, test_index, scores)
    rejected = scores["detector"] > detector.threshold
    predicted_attack = probabilities[:, 1:].argmax(1)
    clean = view.made_by(CLEAN)

    rows = []
    for key in sorted({_group_key(r) for r in view.rows if r.is_attack}):
        group = view.made_by(key[0]) & torch.tensor([_group_key(r) == key for r in view.rows])
        success = group & view.mask(flipped)
        failed = group & ~success & view.mask(lambda r: r.predicted_before == r.true_label)
        attack_index = detector.attack_names.index(key[0])
        rows.append(
            ReportRow(
                attack=key[0],
                eps=key[1],
                images=int(group.sum()),
                successful=int(success.sum()),
                auroc=auroc(scores["detector"][clean], scores["detector"][group]),
                auroc_successful=auroc(scores["detector"][clean], scores["detector"][success]),
                auroc_failed=auroc(scores["detector"][clean], scores["detector"][failed]),
                tpr=_mean(rejected[group]),
                tpr_successful=_mean(rejected[success]),
                tpr_failed=_mean(rejected[failed]),
                named_successful=_mean(predicted_attack[success] == attack_index),
                baselines={
                    name: auroc(values[clean], values[group])
                    for name, values in scores.items()
                    if name != "detector"
                },
            )
        )

    attacked = view.mask(lambda r: r.is_attack)
    per_attack = {
        name: auroc(
            scores["detector"][clean],
            scores["detector"][view.made_by(name)],
        )
        for name in detector.attack_names
    }
    successful = attacked & view.mask(flipped)
    true_attack = [r.attack for r, s in zip(view.rows, successful.tolist(), strict=True) if s]
    named = [detector.attack_names[int(i)] for i in predicted_attack[successful]]
    judged = clean | successful
    outputs = detector.outputs
    truth = [outputs.index(r.attack) for r, j in zip(view.rows, judged.tolist(), strict=True) if j]
    answer = torch.where(rejected, predicted_attack + 1, 0)[judged].tolist()
    guard_confusion = [[0] * len(outputs) for _ in outputs]
    for row, column in zip(truth, answer, strict=True):
        guard_confusion[row][column] += 1
    left_out = []
    if leave_one_out:
        left_out = _leave_one_out(
            detector,
            adversarial,
            features,
            view,
            lambda done, total: say(REPORT_STAGES[2], done, total),
        )
    unseen = []
    for number, name in enumerate(unseen_attacks):
        say(f"{REPORT_STAGES[3]}: {name}", number, len(unseen_attacks))
        unseen.append(
            _unseen_attack_row(
                detector, adversarial, name, scores["detector"][clean], unseen_images
            )
        )
    if unseen_attacks:
        say(REPORT_STAGES[3], len(unseen_attacks), len(unseen_attacks))
    noise = {kind: _mean(rejected[view.made_by(kind)]) for kind in CONTROLS}
    classifier_correct = view.mask(lambda r: r.predicted_before == r.true_label)
    report = DetectionReport(
        threshold=detector.threshold,
        clean_images=int(clean.sum()),
        clean_false_rejection=_mean(rejected[clean]),
        noise_false_rejection=noise,
        rows=rows,
        per_attack_auroc=per_attack,
        leave_one_out=left_out,
        attack_names=detector.attack_names,
        confusion_labels=outputs,
        guard_confusion=guard_confusion,
        naming_accuracy=float(_sklearn_metrics().accuracy_score(true_attack, named))
        if named
        else float("nan"),
        family_accuracy=float(
            _sklearn_metrics().accuracy_score(
                [attack_family(a) for a in true_attack], [attack_family(a) for a in named]
            )
        )
        if named
        else float("nan"),
        guard_accuracy_clean=_mean((~rejected & classifier_correct)[clean]),
        seconds=time.perf_counter() - started,
        unseen=unseen,
        roc_curves=roc_curves(view, detector.attack_names),
    )
    return report, view


def check_unseen_attacks(names: Sequence[str], trained_on: Sequence[str]) -> None:
    """Refuse (``ValueError``) unknown attacks and attacks the detector was trained on."""
    unknown = [name for name in names if name not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    seen = [name for name in names if name in trained_on]
    if seen:
        raise ValueError(f"the detector was trained on {', '.join(seen)}: not an unseen attack")


def _unseen_attack_row(
    detector: Detector,
    adversarial: AdversarialSet,
    name: str,
    clean_scores: Tensor,
    images: int,
) -> UnseenAttackRow:
    """Attack a sample of the clean test images with ``name`` (L∞ ones at ``UNSEEN_EPS``),
    store the result in 8 bits like an upload, and score it with the detector."""
    clean_index = adversarial.where(lambda r: r.split == "test" and r.attack == CLEAN)
    sources = ImageDataset(
        images=adversarial.float_images(clean_index),
        labels=torch.tensor(
            [adversarial.class_names.index(adversarial.rows[i].true_label) for i in clean_index]
        ),
        class_names=adversarial.class_names,
    ).sample(images, seed=0)
    classifier = detector.features.classifier
    linf = ATTACKS[name].norm == "linf"
    attack = create_attack(name, classifier, **({"eps": UNSEEN_EPS} if linf else {}))
    outcome = run_attack(classifier, attack, sources, quantize=True, show_progress=False)
    attack_scores = detector.detect(outcome.adversarial).score
    success = outcome.success & outcome.clean_correct
    rejected = attack_scores > detector.threshold
    return UnseenAttackRow(
        attack=name,
        eps=format_eps(UNSEEN_EPS if linf else None),
        images=len(sources),
        successful=int(success.sum()),
        auroc=auroc(clean_scores, attack_scores),
        auroc_successful=auroc(clean_scores, attack_scores[success]),
        tpr=_mean(rejected),
        tpr_successful=_mean(rejected[success]),
        seconds=outcome.seconds,
    )


def _leave_one_out(
    detector: Detector,
    adversarial: AdversarialSet,
    features: Tensor,
    view: ScoredTestSplit,
    progress: Callable[[int, int], None],
) -> list[LeaveOneOutRow]:
    """For each attack: train a detector on the set without it and judge it on that attack
    (AUROC against the clean test images, detection at its own threshold)."""
    clean = view.made_by(CLEAN)
    flipped_rows = view.mask(flipped)
    results = []
    for number, held_out in enumerate(detector.attack_names):
        progress(number, len(detector.attack_names))
        keep = adversarial.where(lambda r: r.attack != held_out)  # noqa: B023 (used at once)
        without, _ = train_detector(
            detector.features.classifier,
            adversarial.subset(keep),
            detector.config,
            features=features[keep],
            show_progress=False,
        )
        with torch.no_grad():
            score = without.log_odds(features[view.index]).sigmoid()
        rejected = score > without.threshold
        attacked = view.made_by(held_out)
        successful = attacked & flipped_rows
        results.append(
            LeaveOneOutRow(
                attack=held_out,
                auroc=auroc(score[clean], score[attacked]),
                auroc_successful=auroc(score[clean], score[successful]),
                tpr_successful=_mean(rejected[successful]),
                clean_false_rejection=_mean(rejected[clean]),
            )
        )
    progress(len(detector.attack_names), len(detector.attack_names))
    return results


def robustness_from_set(adversarial: AdversarialSet, split: str = "test") -> list[RobustnessRow]:
    """The robustness table of the attacks already in an adversarial set (no new attacks):
    per attack and budget, accuracy before and after, success on correctly classified
    images, mean L2 and largest L∞ after quantisation."""
    groups: dict[tuple[str, str], list[ManifestRow]] = {}
    for row in adversarial.rows:
        if row.split == split and row.is_attack:
            groups.setdefault((row.attack, _group_key(row)[1]), []).append(row)
    table = []
    for rows in groups.values():
        correct = [r for r in rows if r.predicted_before == r.true_label]
        eps = rows[0].eps
        table.append(
            RobustnessRow(
                attack=rows[0].attack,
                eps=None if math.isnan(eps) else eps,
                clean_accuracy=len(correct) / len(rows),
                adversarial_accuracy=sum(r.predicted_after == r.true_label for r in rows)
                / len(rows),
                success_rate=sum(r.success for r in correct) / len(correct)
                if correct
                else float("nan"),
                mean_l2=_mean(torch.tensor([r.l2 for r in rows if r.success])),
                max_linf=max(r.linf for r in rows),
                seconds=float("nan"),
            )
        )
    return table


def _fmt(value: float) -> str:
    return "–" if value != value else f"{value:.3f}"


def report_markdown(report: DetectionReport) -> str:
    """The report as Markdown tables (what ``report.md`` holds)."""
    baselines = sorted({name for row in report.rows for name in row.baselines})
    header = [
        "attack", "ε", "images", "successful", "AUROC", "AUROC successful", "AUROC failed",
        "TPR", "TPR successful", "TPR failed", "named (successful)",
        *[f"AUROC {name}" for name in baselines],
    ]  # fmt: skip
    lines = [
        "# Detection report",
        "",
        f"Operating threshold {report.threshold:.4f}; clean test images {report.clean_images}; "
        f"clean false-rejection rate **{_fmt(report.clean_false_rejection)}**; "
        f"clean images accepted and correctly classified {_fmt(report.guard_accuracy_clean)}.",
        "",
        "Controls (labelled clean) rejected: "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in report.noise_false_rejection.items()),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in report.rows:
        cells = [
            row.attack, row.eps, str(row.images), str(row.successful), _fmt(row.auroc),
            _fmt(row.auroc_successful), _fmt(row.auroc_failed), _fmt(row.tpr),
            _fmt(row.tpr_successful), _fmt(row.tpr_failed), _fmt(row.named_successful),
            *[_fmt(row.baselines.get(name, float("nan"))) for name in baselines],
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    left_out = {row.attack: row for row in report.leave_one_out}
    lines += [
        "",
        "Per attack, all budgets together; *left out*: a detector retrained without the "
        "attack, judged on it (detection at its own threshold, which rejects the clean "
        "share shown).",
        "",
        "| attack | AUROC | left out: AUROC | AUROC successful | detected (successful) "
        "| clean rejected |",
        "|---|---|---|---|---|---|",
    ]
    for name in report.attack_names:
        left = left_out.get(name)
        numbers = (
            (left.auroc, left.auroc_successful, left.tpr_successful, left.clean_false_rejection)
            if left
            else (float("nan"),) * 4
        )
        lines.append(
            f"| {name} | {_fmt(report.per_attack_auroc[name])} | "
            + " | ".join(_fmt(value) for value in numbers)
            + " |"
        )
    lines += [
        "",
        f"Attack named correctly on successful adversarial images: "
        f"**{_fmt(report.naming_accuracy)}**; family (single-step L∞ / iterative L∞ / L2): "
        f"**{_fmt(report.family_accuracy)}**.",
        "",
        "What the guard answered (rows: clean test images and successful adversarial images "
        "by attack; columns: accepted as clean, or rejected naming an attack):",
        "",
        "| true \\ guard | " + " | ".join(report.confusion_labels) + " |",
        "|---|" + "---|" * len(report.confusion_labels),
    ]
    for name, counts in zip(report.confusion_labels, report.guard_confusion, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")
    if report.unseen:
        lines += [
            "",
            "Attacks the detector never trained on (clean test images attacked, stored in "
            "8 bits, scored against every clean test image):",
            "",
            "| attack | ε | images | successful | AUROC | AUROC successful | TPR | "
            "TPR successful |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for unseen in report.unseen:
            lines.append(
                f"| {unseen.attack} | {unseen.eps} | {unseen.images} | {unseen.successful} | "
                f"{_fmt(unseen.auroc)} | {_fmt(unseen.auroc_successful)} | {_fmt(unseen.tpr)} | "
                f"{_fmt(unseen.tpr_successful)} |"
            )
    lines += ["", "![ROC curves](roc.png)", "", "![Attack confusion](confusion.png)"]
    lines += ["", "![Examples](examples.png)", ""]
    return "\n".join(lines)


ROC_POINTS = 100


def roc_curves(view: ScoredTestSplit, attack_names: list[str]) -> dict[str, dict[str, RocCurve]]:
    """ROC points of every scorer for every attack (clean test images are the negatives),
    thinned to at most ``ROC_POINTS`` so that a report stays small enough to chart."""
    clean = view.made_by(CLEAN)
    curves: dict[str, dict[str, RocCurve]] = {}
    for scorer, scores in view.scores.items():
        curves[scorer] = {}
        for name in attack_names:
            group = view.made_by(name)
            if not group.any() or not clean.any():
                continue
            truth = np.r_[np.zeros(int(clean.sum())), np.ones(int(group.sum()))]
            values = np.r_[scores[clean].numpy(), scores[group].numpy()]
            fpr, tpr, _ = _sklearn_metrics().roc_curve(truth, values)
            keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), ROC_POINTS)).round())
            curves[scorer][name] = RocCurve(
                fpr=[round(float(v), 5) for v in fpr[keep.astype(int)]],
                tpr=[round(float(v), 5) for v in tpr[keep.astype(int)]],
                auroc=float(_sklearn_metrics().roc_auc_score(truth, values)),
            )
    return curves


def _plot_roc(report: DetectionReport, path: Path) -> None:
    scorers = list(report.roc_curves)
    figure, axes = plt.subplots(1, len(scorers), figsize=(5 * len(scorers), 4.5))
    axes = np.atleast_1d(axes)
    for axis, scorer in zip(axes, scorers, strict=True):
        for name, curve in report.roc_curves[scorer].items():
            axis.plot(curve.fpr, curve.tpr, label=f"{name} (AUROC {curve.auroc:.3f})")
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        axis.set(title=scorer, xlabel="false-positive rate (clean rejected)",
                 ylabel="true-positive rate")  # fmt: skip
        axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_confusion(report: DetectionReport, path: Path) -> None:
    plot_confusion(
        report.guard_confusion,
        report.confusion_labels,
        path,
        title="Guard: accepted as clean or attack named",
        xlabel="the guard's answer",
        ylabel="true (clean, or successful attack)",
    )


def _plot_examples(adversarial: AdversarialSet, view: ScoredTestSplit, path: Path) -> None:
    """Per attack, one successful test image: clean, adversarial, perturbation ×10."""
    clean_by_source = {r.source_id: i for i, r in zip(view.index.tolist(), view.rows, strict=True)
                       if r.attack == CLEAN}  # fmt: skip
    picks = []
    for name in adversarial.attack_names:
        for position, row in zip(view.index.tolist(), view.rows, strict=True):
            if row.attack == name and flipped(row) and row.source_id in clean_by_source:
                picks.append((row, position, clean_by_source[row.source_id]))
                break
    if not picks:
        return
    figure, axes = plt.subplots(len(picks), 3, figsize=(7.5, 2.6 * len(picks)), squeeze=False)
    for (row, adversarial_at, clean_at), axis_row in zip(picks, axes, strict=True):
        clean_image = adversarial.float_images(torch.tensor([clean_at]))[0]
        attacked = adversarial.float_images(torch.tensor([adversarial_at]))[0]
        amplified = ((attacked - clean_image) * 10 + 0.5).clamp(0, 1)
        titles = [
            f"clean: {row.predicted_before}",
            f"{row.attack} {_group_key(row)[1]}: {row.predicted_after}",
            "perturbation ×10",
        ]
        for axis, image, title in zip(axis_row, (clean_image, attacked, amplified), titles,
                                      strict=True):  # fmt: skip
            axis.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
            axis.set_title(title, fontsize=9)
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_detection_report(
    report: DetectionReport, view: ScoredTestSplit, adversarial: AdversarialSet, out: str | Path
) -> Path:
    """Write ``report.json``, ``report.md``, ``roc.png``, ``confusion.png`` and
    ``examples.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2))
    (out / "report.md").write_text(report_markdown(report))
    _plot_roc(report, out / "roc.png")
    _plot_confusion(report, out / "confusion.png")
    _plot_examples(adversarial, view, out / "examples.png")
    return out
