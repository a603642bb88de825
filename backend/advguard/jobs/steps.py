"""The work of the job bodies, each step over objects in memory and one output folder.

A job body (:mod:`advguard.jobs`) finds its inputs in the storage, runs a step into the
job's folder and records what it made; a CLI command (:mod:`advguard.cli`) loads its
inputs from paths, runs the same step into ``--out`` and prints what it made. So a CLI
run and a job write the same files and numbers by construction. Every step takes a
``progress(stage, done, total)`` callback, its local context: a job's records progress
(and stops a cancelled job), the CLI's draws a progress bar.

It imports the core only: nothing of the storage, HTTP, Celery or the terminal.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from advguard.data import ImageDataset
from advguard.data.appearance import AppearanceRange
from advguard.defenses import AdversarialTrainConfig, AdversarialTrainHistory, adversarial_fit
from advguard.detection import (
    CLEAN,
    AdversarialSet,
    BuildConfig,
    Detector,
    DetectorConfig,
    default_attack_specs,
    export_zip,
    train_detector,
)
from advguard.evaluation import (
    ClassifierMetrics,
    ModelComparison,
    ProtectedAccuracy,
    RobustnessResult,
    RobustnessRow,
    compare_models,
    evaluate_adaptive,
    evaluate_classifier,
    evaluate_robustness,
    format_table,
    json_ready,
    training_summary,
    write_adaptive_report,
    write_robustness_report,
)
from advguard.evaluation.detection_report import (
    UNSEEN_ATTACKS,
    DetectionReport,
    build_detection_report,
    check_unseen_attacks,
    robustness_from_set,
    write_detection_report,
)
from advguard.evaluation.html_report import ModelReport, write_html_report
from advguard.evaluation.metrics import plot_confusion
from advguard.evaluation.robustness import (
    ROBUSTNESS_EPSILONS,
    ROBUSTNESS_L2_EPSILONS,
    ProgressCallback,
    check_robustness_request,
    defense_settings,
)
from advguard.guard import Guard
from advguard.models import (
    ModelSpec,
    TrainConfig,
    TrainHistory,
    fit_classifier,
    read_holdout_files,
    save_model,
)

MODEL_FOLDER = "model"
"""Where a step that makes a model saves it, inside its output folder."""


def save_trained(
    model: nn.Module,
    spec: ModelSpec,
    history: TrainHistory | AdversarialTrainHistory,
    summary: dict[str, Any],
    out: Path,
) -> Path:
    """Save a trained model, the training images held out from it and its metrics
    (``metrics.json``) into ``out/model``; return that folder."""
    folder = save_model(model, spec, out / MODEL_FOLDER, history.holdout_files)
    (folder / "metrics.json").write_text(json.dumps(summary, indent=2))
    return folder


@dataclass
class TrainedClassifier:
    """A classifier trained and tested by :func:`train_classifier`, saved in ``folder``."""

    model: nn.Module
    spec: ModelSpec
    history: TrainHistory
    metrics: ClassifierMetrics
    summary: dict[str, Any]
    """What ``metrics.json`` holds (:func:`~advguard.evaluation.training_summary`)."""
    folder: Path


def train_classifier(
    train: ImageDataset,
    test: ImageDataset,
    config: TrainConfig,
    out: Path,
    progress: ProgressCallback,
) -> TrainedClassifier:
    """Train the built-in CNN on ``train``, test it on ``test``, save it to ``out/model``."""
    model, spec, history = fit_classifier(
        train,
        config,
        progress=lambda epoch, total, _result: progress("training", epoch, total),
        show_progress=False,
    )
    metrics = evaluate_classifier(model, test)
    summary = training_summary(metrics, history)
    folder = save_trained(model, spec, history, summary, out)
    return TrainedClassifier(model, spec, history, metrics, summary, folder)


def set_config(
    attacks: Sequence[str],
    epsilons: Sequence[float],
    *,
    fraction: float,
    seed: int,
    model_folder: str | Path,
) -> BuildConfig:
    """The set builder's configuration: each attack at each L∞ budget (its parameters from
    its class's budget rule). The detector learns on the training images held out from the
    model in ``model_folder`` when it names them. Bad names or budgets raise ``ValueError``."""
    return BuildConfig(
        specs=default_attack_specs(attacks, epsilons),
        fraction=fraction,
        seed=seed,
        holdout_files=read_holdout_files(model_folder),
    )


def describe_set(
    adversarial: AdversarialSet, out: Path, zip_path: Path | None = None
) -> list[RobustnessRow]:
    """Write a built set's robustness table (``robustness.json`` and ``.md``, from the
    attacks already in it) into its folder ``out``, and pack it into ``zip_path`` if given."""
    rows = robustness_from_set(adversarial)
    (out / "robustness.json").write_text(
        json.dumps(json_ready([row.to_dict() for row in rows]), indent=2)
    )
    (out / "robustness.md").write_text("# Robustness (test split)\n\n" + format_table(rows) + "\n")
    if zip_path is not None:
        export_zip(out, zip_path)
    return rows


def fit_guard(
    model: nn.Module,
    spec: ModelSpec,
    adversarial: AdversarialSet,
    config: DetectorConfig,
    out: Path,
    progress: ProgressCallback,
) -> tuple[Guard, Tensor]:
    """Train a detector for ``model`` on ``adversarial``, record what its clean training
    scans look like, save the guard to ``out``; return it with the detector features of
    every row of the set (a report can reuse them)."""
    detector, features = train_detector(
        model, adversarial, config, show_progress=False, progress=progress
    )
    clean_train = adversarial.where(lambda row: row.split == "train" and row.attack == CLEAN)
    appearance = AppearanceRange.fit(adversarial.images[clean_train])
    guard = Guard(model, spec, detector, appearance=appearance)
    guard.save(out)
    return guard, features


def unseen_attacks(requested: Sequence[str] | None, trained_on: Sequence[str]) -> list[str]:
    """The attacks to report a detector on that it never trained on: ``requested``
    (checked; ``ValueError`` for unknown or trained-on ones), or by default those of
    :data:`UNSEEN_ATTACKS` it was not trained on."""
    if requested is None:
        return [name for name in UNSEEN_ATTACKS if name not in trained_on]
    check_unseen_attacks(requested, trained_on)
    return list(requested)


def report_detector(
    detector: Detector,
    adversarial: AdversarialSet,
    out: Path,
    progress: ProgressCallback,
    *,
    unseen: Sequence[str] | None = None,
    baselines: bool = True,
    leave_one_out: bool = True,
    features: Tensor | None = None,
) -> DetectionReport:
    """Measure a detector on the set's test split and write the report into ``out``
    (``unseen``: see :func:`unseen_attacks`)."""
    attacks = unseen_attacks(unseen, detector.attack_names)
    result, view = build_detection_report(
        detector,
        adversarial,
        features=features,
        baselines=baselines,
        leave_one_out=leave_one_out,
        unseen_attacks=attacks,
        progress=progress,
        show_progress=False,
    )
    write_detection_report(result, view, adversarial, out)
    return result


def measure_robustness(
    model: nn.Module,
    dataset: ImageDataset,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    defenses: Sequence[str],
    out: Path,
    progress: ProgressCallback,
    *,
    l2_epsilons: Sequence[float] = ROBUSTNESS_L2_EPSILONS,
    batch_size: int = 128,
) -> tuple[RobustnessResult, dict[str, str]]:
    """Accuracy of ``model`` under each attack over the L∞ grid ``epsilons`` (and the L2
    grid ``l2_epsilons`` for L2 attacks), without and with each of ``defenses``; write the
    report into ``out`` and return it with its files by kind. Unknown attacks, defenses or
    bad budgets raise ``ValueError`` before any attack."""
    check_robustness_request(attacks, epsilons, l2_epsilons)
    result = evaluate_robustness(
        model,
        dataset,
        attacks,
        epsilons,
        defense_settings(defenses),
        l2_epsilons=l2_epsilons,
        batch_size=batch_size,
        progress=lambda stage, done, total: progress(f"attacking: {stage}", done, total),
        show_progress=False,
    )
    return result, write_robustness_report(result, out)


def measure_adaptive(
    classifiers: dict[str, nn.Module],
    dataset: ImageDataset,
    detector: Detector | None,
    epsilons: Sequence[float],
    steps: int,
    seed: int,
    out: Path,
    progress: ProgressCallback,
) -> tuple[list[ProtectedAccuracy], dict[str, str]]:
    """Protected accuracy of each classifier behind ``detector`` under the attack that
    knows it (and the one that does not), on ``dataset`` as 8-bit images; write the
    report into ``out`` and return its rows and files by kind."""
    rows = evaluate_adaptive(
        classifiers,
        dataset.quantised(),
        detector,
        epsilons=epsilons,
        steps=steps,
        seed=seed,
        progress=lambda done, total: progress("adaptive attack", done, total),
        show_progress=False,
    )
    return rows, write_adaptive_report(rows, out)


REPORT_ATTACKS = ("fgsm", "pgd", "apgd", "cw", "deepfool", "autoattack", "autoattack-l2")
"""What the handover report attacks by default: AutoAttack (L∞ and L2), the field's
standard number, beside the attacks a reader knows by name."""
REPORT_DEFENSES = ("bit_depth", "median", "jpeg", "gaussian_blur")
REPORT_DEFENSE_ATTACK = "pgd"
"""The attack each preprocessing defense is measured under, plainly and through BPDA."""
MODEL_REPORT_STAGES = ("attacking", "defenses", "detector features", "unseen attacks", "adaptive")
"""What :func:`measure_report` goes through, in order, as its progress says."""
REPORT_FILE = "report.html"


@dataclass
class ReportInputs:
    """What a handover report is about: a model, its test sample, and optionally the
    detector in front of it with the adversarial set it was trained on."""

    model: nn.Module
    model_name: str
    dataset: ImageDataset
    dataset_name: str
    seed: int = 0
    detector: Detector | None = None
    detector_name: str | None = None
    adversarial: AdversarialSet | None = None


def measure_report(
    inputs: ReportInputs,
    out: Path,
    progress: ProgressCallback,
    *,
    attacks: Sequence[str] = REPORT_ATTACKS,
    epsilons: Sequence[float] = ROBUSTNESS_EPSILONS,
    l2_epsilons: Sequence[float] = ROBUSTNESS_L2_EPSILONS,
    defenses: Sequence[str] = REPORT_DEFENSES,
    adaptive_steps: int = 50,
    unseen: Sequence[str] | None = None,
    batch_size: int = 128,
) -> ModelReport:
    """Measure everything the handover report says into ``out`` (each part's own files
    in a subfolder) and write ``out/report.html``: clean accuracy, robustness under each
    attack (AutoAttack included by default), :data:`REPORT_DEFENSE_ATTACK` behind each
    preprocessing defense with and without BPDA, and with a detector, its report (the
    ``unseen`` attacks included: see :func:`unseen_attacks`) and the adaptive attack. Bad
    attacks or budgets raise ``ValueError`` before any attack."""
    check_robustness_request(attacks, epsilons, l2_epsilons)
    defense_settings(defenses)
    if (inputs.detector is None) != (inputs.adversarial is None):
        raise ValueError("a detector's report needs both the detector and its adversarial set")
    model, dataset = inputs.model, inputs.dataset
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    clean = evaluate_classifier(model, dataset)
    figures["confusion"] = plot_confusion(
        clean.confusion_matrix, clean.class_names, out / "confusion.png",
        title="Clean test images",
    )  # fmt: skip
    robustness, files = measure_robustness(
        model, dataset, attacks, epsilons, [], out / "robustness", progress,
        l2_epsilons=l2_epsilons, batch_size=batch_size,
    )  # fmt: skip
    figures["robustness"] = out / "robustness" / files["plot"]
    defended = None
    if defenses:
        # Its own stage: "defenses: …" follows "attacking: …" in the job's progress.
        relabelled: ProgressCallback = lambda stage, done, total: progress(  # noqa: E731
            stage.replace("attacking", "defenses", 1), done, total
        )
        defended, files = measure_robustness(
            model, dataset, [REPORT_DEFENSE_ATTACK], epsilons, defenses, out / "defenses",
            relabelled, batch_size=batch_size,
        )  # fmt: skip
        figures["defenses"] = out / "defenses" / files["plot"]
    detection: DetectionReport | None = None
    adaptive: list[ProtectedAccuracy] = []
    if inputs.detector is not None and inputs.adversarial is not None:
        detection = report_detector(
            inputs.detector, inputs.adversarial, out / "detection", progress,
            unseen=unseen, baselines=False, leave_one_out=False,
        )  # fmt: skip
        for name in ("roc", "confusion", "examples"):
            figures[f"detector_{name}"] = out / "detection" / f"{name}.png"
        adaptive, files = measure_adaptive(
            {"classifier": model}, dataset, inputs.detector,
            [eps for eps in epsilons if eps > 0], adaptive_steps, inputs.seed,
            out / "adaptive", progress,
        )  # fmt: skip
        figures["adaptive"] = out / "adaptive" / files["plot"]
    report = ModelReport(
        model=inputs.model_name,
        dataset=inputs.dataset_name,
        seed=inputs.seed,
        clean=clean,
        robustness=robustness,
        defenses=defended,
        detector=inputs.detector_name,
        detection=detection,
        adaptive=adaptive,
        figures=figures,
    )
    write_html_report(report, out / REPORT_FILE)
    return report


def write_comparison(comparison: ModelComparison, out: Path) -> None:
    """Save a model comparison as ``comparison.json`` and ``comparison.md`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(json_ready(comparison.to_dict()), indent=2))
    (out / "comparison.md").write_text(
        f"# Clean and robust accuracy\n\nWorst case per image under "
        f"{', '.join(comparison.attacks)} on {comparison.images} test images "
        f"({comparison.seconds:.0f} s).\n\n{comparison.markdown()}\n"
    )


@dataclass
class AdversariallyTrained:
    """What :func:`train_adversarially` made: the model (trained in place), its history,
    its ``metrics.json`` summary, where it was saved, and its comparison with its start."""

    model: nn.Module
    history: AdversarialTrainHistory
    summary: dict[str, Any]
    folder: Path
    comparison: ModelComparison


def adversarial_label(config: AdversarialTrainConfig) -> str:
    """``PGD-AT`` or ``TRADES``: how tables name a model trained with ``config``."""
    return "PGD-AT" if config.method == "pgd" else "TRADES"


def train_adversarially(
    model: nn.Module,
    spec: ModelSpec,
    train: ImageDataset,
    test: ImageDataset,
    config: AdversarialTrainConfig,
    out: Path,
    progress: ProgressCallback,
    *,
    start_name: str | None = "start",
    comparison_images: int | None = 200,
    comparison_out: Path | None = None,
    resume: bool = True,
) -> AdversariallyTrained:
    """Train ``model`` adversarially in place (checkpoints in ``out/checkpoints``, resumed
    when present unless ``resume`` is false), save it to ``out/model`` and compare it,
    under PGD on a random ``comparison_images`` test images, with its start (named
    ``start_name``; ``None`` when the model was new). The comparison goes to
    ``comparison_out`` (default ``out``)."""
    start = None if start_name is None else copy.deepcopy(model)
    label = adversarial_label(config)
    history = adversarial_fit(
        model,
        train,
        config,
        checkpoint_dir=out / "checkpoints",
        resume=resume,
        progress=lambda epoch, total, _result: progress(
            f"adversarial training ({config.method})", epoch, total
        ),
        show_progress=False,
    )
    summary = training_summary(evaluate_classifier(model, test), history)
    folder = save_trained(model, spec, history, summary, out)
    compared: dict[str, nn.Module] = {label: model}
    if start_name is not None and start is not None:
        compared = {start_name: start, label: model}
    comparison = compare_models(
        compared,
        test.sample(comparison_images, config.seed),
        sorted({0.0, 2 / 255, 4 / 255, 8 / 255, config.eps}),
        progress=lambda stage, done, total: progress(f"comparing: {stage}", done, total),
        show_progress=False,
    )
    write_comparison(comparison, comparison_out or out)
    return AdversariallyTrained(model, history, summary, folder, comparison)


__all__ = [
    "MODEL_FOLDER",
    "AdversariallyTrained",
    "TrainedClassifier",
    "adversarial_label",
    "describe_set",
    "fit_guard",
    "measure_adaptive",
    "measure_robustness",
    "report_detector",
    "save_trained",
    "set_config",
    "train_adversarially",
    "train_classifier",
    "unseen_attacks",
    "write_comparison",
]
