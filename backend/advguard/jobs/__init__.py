"""The long-running jobs and their registry: each job type's parameters, result, queue,
checks and body, declared once in :data:`JOB_KINDS`.

A body finds its inputs in the storage, runs its steps (:mod:`advguard.jobs.steps`, which
the CLI runs too) and records what they made; its result model is in
:mod:`advguard.jobs.results`. The worker's Celery tasks are thin wrappers around the
bodies; the API validates requests and documents answers with the registry's models.
Nothing here knows Celery or HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, TypeVar, Union, get_args

import torch
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from advguard.attacks import parse_budget
from advguard.config import Settings
from advguard.data import ImageDataset, load_dataset
from advguard.defenses import AdversarialTrainConfig
from advguard.detection import (
    DEFAULT_EPSILONS,
    DETECTOR_ATTACKS,
    BuildConfig,
    Detector,
    DetectorConfig,
    build_parts,
    load_adversarial_set,
    merge_chunk_manifests,
    part_sizes,
    write_chunk_manifest,
)
from advguard.detection.detector import DETECTOR_STAGES
from advguard.evaluation import (
    ROBUSTNESS_ATTACKS,
    ROBUSTNESS_EPSILONS,
    ROBUSTNESS_L2_EPSILONS,
    adaptive_summary,
    format_eps,
    json_ready,
)
from advguard.evaluation.adaptive import DEFAULT_STEPS as ADAPTIVE_STEPS
from advguard.evaluation.detection_report import REPORT_STAGES
from advguard.evaluation.robustness import MAX_L2_EPS, check_robustness_request
from advguard.guard import Guard
from advguard.jobs.results import (
    AdversarialTrainingResult,
    BuildSetResult,
    EvaluateResult,
    EvaluateRobustnessResult,
    ModelReportResult,
    TrainClassifierResult,
    TrainDetectorResult,
)
from advguard.jobs.steps import (
    MODEL_FOLDER,
    MODEL_REPORT_STAGES,
    REPORT_ATTACKS,
    REPORT_FILE,
    ReportInputs,
    adversarial_label,
    describe_set,
    fit_guard,
    measure_adaptive,
    measure_report,
    measure_robustness,
    report_detector,
    set_config,
    train_adversarially,
    train_classifier,
)
from advguard.jobs.steps import unseen_attacks as pick_unseen_attacks
from advguard.models import (
    ModelSpec,
    TrainConfig,
    load_classifier,
    new_model,
)
from advguard.storage import (
    FINISHED_STATES,
    DatasetRecord,
    DetectorRecord,
    JobRecord,
    ModelRecord,
    Storage,
    new_id,
    utc_now,
)

RecordT = TypeVar("RecordT", DatasetRecord, ModelRecord, DetectorRecord, JobRecord)


class JobCancelled(Exception):
    """Raised inside a job when its record says it was cancelled (or, for one chunk of a
    split job, that another chunk failed): stop without touching the record."""


class JobInputError(ValueError):
    """A job that cannot run with what it was given; the message is shown to the user."""


Budget = Annotated[
    float,
    BeforeValidator(parse_budget),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number"}, {"type": "string"}],
            "description": "L∞ budget: 8/255, 0.031, or a bare 8 meaning 8/255",
        },
        mode="validation",
    ),
]
"""An L∞ budget in the syntax every budget field takes (:func:`parse_budget`); answers
give it as a number."""


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    """The job type: each subclass fixes it to its own name."""


class TrainClassifierParams(_Params):
    """Train the built-in CNN on a dataset's train split; test it on its test split."""

    type: Literal["train_classifier"] = "train_classifier"
    dataset_id: str = "bundled"
    name: str | None = Field(None, max_length=200)
    epochs: int = Field(TrainConfig.epochs, ge=1, le=500)
    patience: int = Field(
        TrainConfig.patience,
        ge=1,
        le=500,
        description="Early-stopping patience in epochs (only with ema_decay 0)",
    )
    time_limit_s: float | None = Field(None, gt=0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    ema_decay: float = Field(
        TrainConfig.ema_decay,
        ge=0,
        lt=1,
        description="Decay of the moving average of the weights that is kept; 0 keeps the "
        "best validation epoch",
    )

    def train_config(self) -> TrainConfig:
        """The training recipe these parameters ask for."""
        recipe = {field.name for field in fields(TrainConfig)}
        return TrainConfig(**self.model_dump(include=recipe))


class BuildSetParams(_Params):
    """Generate an adversarial set (clean, attacked, noise and augmented controls)."""

    type: Literal["build_adversarial_set"] = "build_adversarial_set"
    dataset_id: str = "bundled"
    model_id: str
    name: str | None = Field(None, max_length=200)
    """The set's name (default: its attacks, budgets and model)."""
    attacks: list[str] = Field(default_factory=lambda: list(DETECTOR_ATTACKS), min_length=1)
    eps: list[Annotated[Budget, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: list(DEFAULT_EPSILONS), min_length=1, max_length=32
    )
    fraction: float = Field(0.3, gt=0, le=1)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class TrainDetectorParams(_Params):
    """Train a detector on a built set; save it with its classifier as a guard."""

    type: Literal["train_detector"] = "train_detector"
    set_job_id: str
    name: str | None = Field(None, max_length=200)
    target_false_rejection: float = Field(0.02, gt=0, lt=1)
    epochs: int = Field(150, ge=1, le=2000)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class EvaluateParams(_Params):
    """Report a detector on a set's test split: ROC/AUROC, naming, baselines."""

    type: Literal["evaluate"] = "evaluate"
    detector_id: str
    set_job_id: str | None = None
    """Default: the set the detector was trained on."""
    baselines: bool = True
    leave_one_out: bool = True
    """Retrain the detector without each attack in turn and judge it on that attack."""
    unseen_attacks: list[str] | None = Field(None, max_length=16)
    """Attacks the detector never trained on, to report it on (default: those of
    DeepFool, APGD and Square it was not trained on)."""


DefenseName = Literal["bit_depth", "median", "jpeg", "gaussian_blur"]


class _RobustnessRequest(_Params):
    """What a robustness evaluation and a handover report both take: a model, a test
    sample, attacks over an L∞ and an L2 grid, defenses, and optionally a detector."""

    model_id: str
    dataset_id: str = "bundled"
    attacks: list[str] = Field(
        default_factory=lambda: list(ROBUSTNESS_ATTACKS), min_length=1, max_length=32
    )
    eps: list[Annotated[Budget, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: list(ROBUSTNESS_EPSILONS), min_length=1, max_length=32
    )
    """L∞ budgets (pixel scale) of the L∞ attacks."""
    l2_eps: list[Annotated[float, Field(ge=0, le=MAX_L2_EPS)]] = Field(
        default_factory=lambda: list(ROBUSTNESS_L2_EPSILONS), max_length=32
    )
    """L2 radii (pixel scale) of the L2 attacks (reported only when one is named)."""
    defenses: list[DefenseName] = Field(default_factory=list, max_length=4)
    limit: int | None = Field(200, ge=1, le=100_000)
    """Evaluate a random ``limit`` test images (``None``: all of them)."""
    detector_id: str | None = None
    """Also attack the model behind this detector adaptively (an attack that knows the
    detector) and report protected accuracy (rejected or correct) at the non-zero budgets."""
    adaptive_steps: int = Field(ADAPTIVE_STEPS, ge=1, le=200)
    seed: int = Field(0, ge=0, le=2**31 - 1)


class EvaluateRobustnessParams(_RobustnessRequest):
    """Accuracy under each attack over an ε grid, without and with preprocessing defenses
    (each attacked plainly and through BPDA), on a random sample of a test split."""

    type: Literal["evaluate_robustness"] = "evaluate_robustness"


class ModelReportParams(_RobustnessRequest):
    """One self-contained HTML report to hand over with a model: clean accuracy,
    AutoAttack (L∞ and L2) and per-attack robustness, PGD behind each preprocessing
    defense with and without BPDA, and, with a detector, its report on the set it trained
    on (unseen attacks included) and the adaptive attack."""

    type: Literal["model_report"] = "model_report"
    attacks: list[str] = Field(
        default_factory=lambda: list(REPORT_ATTACKS), min_length=1, max_length=32
    )
    defenses: list[DefenseName] = Field(
        default_factory=lambda: list(get_args(DefenseName)), max_length=4
    )
    """The preprocessing defenses PGD is measured behind (default: all four)."""
    detector_id: str | None = None
    """Also report this detector (on the set it trained on, with unseen attacks) and the
    adaptive attack on the guard it makes with the model."""
    unseen_attacks: list[str] | None = Field(None, max_length=16)
    """Attacks the detector never trained on, to report it on (default: those of
    DeepFool, APGD and Square it was not trained on)."""


class AdversarialTrainingParams(_Params):
    """Adversarial training (PGD-AT or TRADES), fine-tuning a model or from scratch; the
    result is registered as a new model, compared with its start under PGD on the test
    split. Resumes from its last epoch if its worker dies."""

    type: Literal["adversarial_training"] = "adversarial_training"
    dataset_id: str = "bundled"
    model_id: str | None = None
    """Start from this built-in-architecture model's weights (``None``: a new CNN)."""
    name: str | None = Field(None, max_length=200)
    method: Literal["pgd", "trades"] = "pgd"
    eps: Budget = Field(8 / 255, gt=0, le=0.25)
    steps: int = Field(5, ge=1, le=50)
    """Inner attack steps (step size 2.5·eps/steps)."""
    beta: float = Field(6.0, ge=0, le=100)
    """TRADES only: weight of the robustness (KL) term."""
    epochs: int = Field(10, ge=1, le=500)
    patience: int = Field(10, ge=1, le=500)
    time_limit_s: float | None = Field(None, gt=0)
    evaluation_limit: int | None = Field(200, ge=1, le=100_000)
    """Test images for the before/after robustness comparison (``None``: all)."""
    seed: int = Field(0, ge=0, le=2**31 - 1)

    def train_config(self) -> AdversarialTrainConfig:
        """The adversarial-training recipe these parameters ask for."""
        recipe = {field.name for field in fields(AdversarialTrainConfig)}
        return AdversarialTrainConfig(**self.model_dump(include=recipe))


ParamsT = TypeVar("ParamsT", bound=_Params)


@dataclass
class JobContext:
    """What a job body needs: the storage, its record id, the settings of the process that
    runs it, and a progress reporter that also notices cancellation (checked at most every
    ``check_every_s`` seconds). ``stages`` are the job type's stages in order
    (:attr:`JobKind.stages`): a progress label starting with one of them is that stage."""

    storage: Storage
    job_id: str
    settings: Settings
    slot: int = 0
    on_progress: Callable[[str, int, int], None] | None = None
    check_every_s: float = 0.5
    stages: tuple[str, ...] = ()
    _last_check: float = field(default=0.0, repr=False)
    _stage_number: int = field(default=1, repr=False)

    @property
    def folder(self) -> Path:
        folder = self.storage.folder("jobs", self.job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def progress(self, stage: str, done: int, total: int) -> None:
        """Record progress; raise :class:`JobCancelled` if the job was cancelled."""
        number = next(
            (k + 1 for k, name in enumerate(self.stages) if stage.startswith(name)),
            self._stage_number,
        )
        now = time.monotonic()
        moved_on = number != self._stage_number
        if done < total and not moved_on and now - self._last_check < self.check_every_s:
            return
        self._last_check, self._stage_number = now, number
        self.storage.set_progress(
            self.job_id, self.slot, stage, done, total, number, max(len(self.stages), 1)
        )
        if self.on_progress is not None:
            self.on_progress(stage, done, total)
        with self.storage.db.session() as session:
            record = session.get(JobRecord, self.job_id)
            if record is None or record.state in ("cancelled", "failed"):
                raise JobCancelled(self.job_id)


# --- lookups with readable errors ----------------------------------------------------------


def find_record(storage: Storage, kind: type[RecordT], record_id: str, label: str) -> RecordT:
    """The ``kind`` record with this id, or :class:`JobInputError` naming what is missing."""
    with storage.db.session() as session:
        record = session.get(kind, record_id)
    if record is None:
        raise JobInputError(f"{label} {record_id!r} does not exist")
    return record


def succeeded_set_job(storage: Storage, job_id: str) -> JobRecord:
    """A ``build_adversarial_set`` job that has succeeded (its set can be used)."""
    record = find_record(storage, JobRecord, job_id, "job")
    if record.type != "build_adversarial_set":
        raise JobInputError(f"job {job_id} is a {record.type} job, not an adversarial set")
    if record.state != "succeeded":
        raise JobInputError(f"adversarial-set job {job_id} is {record.state}, not succeeded")
    return record


def _dataset(
    context: JobContext, dataset_id: str, image_size: int | None = None, channels: int = 1
) -> dict[str, Any]:
    """The dataset's splits at the model's input shape (grey scans repeated into RGB for an
    RGB model), its class names and name."""
    record = find_record(context.storage, DatasetRecord, dataset_id, "dataset")
    folder = load_dataset(
        record.source,
        image_size=image_size,
        channels=channels,
        settings=context.settings,
        slice_axis=record.slice_axis,
    )
    return {"splits": folder.splits, "class_names": folder.class_names, "name": record.name}


def _model(storage: Storage, model_id: str) -> tuple[torch.nn.Module, Any, ModelRecord]:
    record = find_record(storage, ModelRecord, model_id, "model")
    model, spec = load_classifier(record.path)
    return model, spec, record


def matching_model_and_dataset(
    storage: Storage, model_id: str, dataset_id: str
) -> tuple[ModelRecord, DatasetRecord]:
    """The model and dataset records, refused when their class names differ."""
    model = find_record(storage, ModelRecord, model_id, "model")
    dataset = find_record(storage, DatasetRecord, dataset_id, "dataset")
    if dataset.class_names:  # known once the dataset was imported
        check_same_classes(model.class_names, dataset.class_names)
    return model, dataset


def _name_of(storage: Storage, kind: type[RecordT], record_id: str | None) -> str:
    """A record's name for another record's default name (its id if it is gone)."""
    if record_id is None:
        return "a new CNN"
    with storage.db.session() as session:
        record = session.get(kind, record_id)
        return str(record.name) if record is not None and record.name else record_id


def default_job_name(storage: Storage, params: Any) -> str:
    """What a job is called until the user names it: the name it was given, else what it
    does and on what (so that lists and pickers show words, not ids)."""
    if getattr(params, "name", None):
        return str(params.name)
    match params:
        case TrainClassifierParams():
            return f"CNN on {_name_of(storage, DatasetRecord, params.dataset_id)}"
        case BuildSetParams():
            budgets = ", ".join(format_eps(eps) for eps in params.eps)
            attacks = ", ".join(params.attacks)
            return f"{attacks} at {budgets} on {_name_of(storage, ModelRecord, params.model_id)}"
        case TrainDetectorParams():
            return f"detector on {_name_of(storage, JobRecord, params.set_job_id)}"
        case EvaluateParams():
            return f"report on {_name_of(storage, DetectorRecord, params.detector_id)}"
        case ModelReportParams():
            return f"report on {_name_of(storage, ModelRecord, params.model_id)}"
        case EvaluateRobustnessParams():
            return f"robustness of {_name_of(storage, ModelRecord, params.model_id)}"
        case AdversarialTrainingParams():
            label = adversarial_label(params.train_config())
            return f"{label} of {_name_of(storage, ModelRecord, params.model_id)}"
    raise TypeError(f"no default name for {type(params).__name__}")


def check_same_classes(model_classes: list[str], dataset_classes: list[str]) -> None:
    """Refuse (:class:`JobInputError`) a model used on a dataset with other classes."""
    if list(model_classes) != list(dataset_classes):
        raise JobInputError(
            f"the model's classes {model_classes} differ from the dataset's {dataset_classes}"
        )


def check_robustness_params(params: _RobustnessRequest) -> None:
    """Refuse unknown attacks or bad budgets (:class:`JobInputError`)."""
    try:
        check_robustness_request(params.attacks, params.eps, params.l2_eps)
    except ValueError as error:
        raise JobInputError(str(error)) from error


def _set_folder(storage: Storage, set_job_id: str) -> Path:
    succeeded_set_job(storage, set_job_id)
    return storage.folder("jobs", set_job_id) / "set"


# --- job bodies ----------------------------------------------------------------------------


MODEL_ARTIFACTS = {
    "weights": f"{MODEL_FOLDER}/model.safetensors",
    "description": f"{MODEL_FOLDER}/model.json",
    "metrics": f"{MODEL_FOLDER}/metrics.json",
}
"""Where a job that makes a model leaves its files, relative to the job's folder."""


def record_model(
    context: JobContext,
    spec: ModelSpec,
    summary: dict[str, Any],
    folder: Path,
    *,
    name: str,
    origin: str,
    dataset_id: str,
) -> str:
    """Record a model a step saved into ``folder``; return its id."""
    with context.storage.db.session() as session:
        record = ModelRecord(
            name=name,
            origin=origin,
            path=str(folder),
            class_names=spec.class_names,
            image_size=spec.image_size,
            channels=spec.in_channels,
            dataset_id=dataset_id,
            job_id=context.job_id,
            metrics=summary,
        )
        session.add(record)
        session.flush()
        return record.id


def train_classifier_job(context: JobContext, params: TrainClassifierParams) -> dict[str, Any]:
    """Train, test and register a model; the result names it."""
    data = _dataset(context, params.dataset_id)
    splits: dict[str, ImageDataset] = data["splits"]
    trained = train_classifier(
        splits["train"], splits["test"], params.train_config(), context.folder, context.progress
    )
    model_id = record_model(
        context, trained.spec, trained.summary, trained.folder,
        name=default_job_name(context.storage, params), origin="trained",
        dataset_id=params.dataset_id,
    )  # fmt: skip
    return {"model_id": model_id, **trained.summary, "artifacts": MODEL_ARTIFACTS}


def build_config(params: BuildSetParams, model: ModelRecord) -> BuildConfig:
    """The builder's configuration for these parameters (bad names raise ValueError)."""
    return set_config(
        params.attacks,
        params.eps,
        fraction=params.fraction,
        seed=params.seed,
        model_folder=model.path,
    )


SET_STAGES = ("attacking", "joining chunks")
"""An adversarial-set job's stages: its chunks attack (in parallel), then one joins them."""


def plan_set_job(
    context: JobContext, params: BuildSetParams, parts_per_chunk: int
) -> list[list[int]]:
    """Check the inputs and split the build into chunks of consecutive parts (the manifest
    is their concatenation); each chunk's progress slot starts at 0 of its image count."""
    record = find_record(context.storage, ModelRecord, params.model_id, "model")
    data = _dataset(context, params.dataset_id, record.image_size, record.channels)
    check_same_classes(record.class_names, data["class_names"])
    config = build_config(params, record)
    try:
        splits = config.source_splits(data["splits"])
    except ValueError as error:
        raise JobInputError(str(error)) from error
    sizes = part_sizes({name: len(split) for name, split in splits.items()}, config)
    chunks = [
        list(range(start, min(len(sizes), start + parts_per_chunk)))
        for start in range(0, len(sizes), parts_per_chunk)
    ]
    for chunk, parts in enumerate(chunks):
        context.storage.set_progress(
            context.job_id,
            chunk + 1,
            SET_STAGES[0],
            0,
            sum(sizes[p] for p in parts),
            1,
            len(SET_STAGES),
        )
    return chunks


def build_set_chunk(
    context: JobContext, params: BuildSetParams, chunk: int, parts: list[int]
) -> int:
    """Make one chunk of the set's parts (a chunk task); return its image count."""
    model, _, record = _model(context.storage, params.model_id)
    data = _dataset(context, params.dataset_id, record.image_size, record.channels)
    out = context.storage.folder("jobs", context.job_id) / "set"
    made = build_parts(
        model,
        data["splits"],
        out,
        build_config(params, record),
        parts,
        # One label for every chunk: the job attacks in all of them at once, and the
        # images attacked are counted over all of them together.
        progress=lambda _stage, done, total: context.progress(SET_STAGES[0], done, total),
        show_progress=False,
    )
    write_chunk_manifest(out, chunk, made)
    return len(made)


def finish_set(context: JobContext, params: BuildSetParams, chunks: int) -> dict[str, Any]:
    """Join the chunks into one set, its robustness table and its zip."""
    record = find_record(context.storage, ModelRecord, params.model_id, "model")
    out = context.storage.folder("jobs", context.job_id) / "set"
    context.progress(SET_STAGES[1], 0, 1)
    count = merge_chunk_manifests(
        out, chunks, list(record.class_names), build_config(params, record), record.channels
    )
    adversarial = load_adversarial_set(out)
    rows = [row.to_dict() for row in describe_set(adversarial, out, context.folder / "set.zip")]
    context.progress(SET_STAGES[1], 1, 1)
    return {
        "images": count,
        "attack_names": adversarial.attack_names,
        "robustness": json_ready(rows),
        "artifacts": {"manifest": "set/manifest.csv", "zip": "set.zip"},
    }


def train_detector_job(context: JobContext, params: TrainDetectorParams) -> dict[str, Any]:
    """Train a detector on a set and register it with its classifier as a guard."""
    folder = _set_folder(context.storage, params.set_job_id)
    with context.storage.db.session() as session:
        set_job = session.get(JobRecord, params.set_job_id)
        assert set_job is not None
        model_id = set_job.params["model_id"]
    model, spec, _ = _model(context.storage, model_id)
    if spec is None:
        raise JobInputError(f"model {model_id} has no description (class names, input size)")
    adversarial = load_adversarial_set(folder)
    config = DetectorConfig(
        target_false_rejection=params.target_false_rejection,
        epochs=params.epochs,
        seed=params.seed,
    )
    detector_id = new_id()
    guard_folder = context.storage.folder("detectors", detector_id)
    guard, _features = fit_guard(model, spec, adversarial, config, guard_folder, context.progress)
    with context.storage.db.session() as session:
        session.add(
            DetectorRecord(
                id=detector_id,
                name=default_job_name(context.storage, params),
                path=str(guard_folder),
                model_id=model_id,
                set_job_id=params.set_job_id,
                job_id=context.job_id,
                attack_names=adversarial.attack_names,
                threshold=guard.detector.threshold,
            )
        )
    return {"detector_id": detector_id, "threshold": guard.detector.threshold}


def unseen_attacks(params: EvaluateParams | ModelReportParams, trained_on: list[str]) -> list[str]:
    """The attacks to report the detector on that it never trained on (checked)."""
    try:
        return pick_unseen_attacks(params.unseen_attacks, trained_on)
    except ValueError as error:
        raise JobInputError(str(error)) from error


def evaluate_job(context: JobContext, params: EvaluateParams) -> dict[str, Any]:
    """Write the detection report for a detector on a set's test split."""
    detector_record = find_record(context.storage, DetectorRecord, params.detector_id, "detector")
    guard_path = detector_record.path
    set_job_id = params.set_job_id or detector_record.set_job_id
    adversarial = load_adversarial_set(_set_folder(context.storage, set_job_id))
    guard = Guard.load(guard_path)
    out = context.folder / "report"
    result = report_detector(
        guard.detector,
        adversarial,
        out,
        context.progress,
        unseen=unseen_attacks(params, guard.detector.attack_names),
        baselines=params.baselines,
        leave_one_out=params.leave_one_out,
    )
    with context.storage.db.session() as session:
        reported = session.get(DetectorRecord, params.detector_id)
        if reported is not None:  # it may have been deleted while the report ran
            reported.report_job_id = context.job_id
    return {
        "report": result.to_dict(),
        "artifacts": {
            name: f"report/{name}"
            for name in ("report.json", "report.md", "roc.png", "confusion.png", "examples.png")
            if (out / name).exists()
        },
    }


def robustness_detector(storage: Storage, params: _RobustnessRequest) -> Detector:
    """The detector of an adaptive robustness test, refused (:class:`JobInputError`) when
    its classes differ from the model's. Its features keep the classifier it was trained
    with, so it can stand in front of another model (an adversarially trained one, say)."""
    assert params.detector_id is not None
    record = find_record(storage, DetectorRecord, params.detector_id, "detector")
    model = find_record(storage, ModelRecord, params.model_id, "model")
    guard = Guard.load(record.path)
    check_same_classes(model.class_names, guard.spec.class_names)
    return guard.detector


def evaluate_robustness_job(
    context: JobContext, params: EvaluateRobustnessParams
) -> dict[str, Any]:
    """Accuracy-vs-ε curves for a model on a test sample; report files in ``robustness/``."""
    check_robustness_params(params)
    model, _, record = _model(context.storage, params.model_id)
    detector = None if params.detector_id is None else robustness_detector(context.storage, params)
    dataset, _ = _test_sample(context, params, record)
    result, files = measure_robustness(
        model,
        dataset,
        params.attacks,
        params.eps,
        params.defenses,
        context.folder / "robustness",
        context.progress,
        l2_epsilons=params.l2_eps,
    )
    artifacts = {name: f"robustness/{file}" for name, file in files.items()}
    outcome: dict[str, Any] = {"robustness": json_ready(result.to_dict())}
    if detector is not None:
        rows, adaptive_files = measure_adaptive(
            {"classifier": model},
            dataset,
            detector,
            [eps for eps in params.eps if eps > 0],
            params.adaptive_steps,
            params.seed,
            context.folder / "adaptive",
            context.progress,
        )
        artifacts |= {
            f"adaptive_{name}": f"adaptive/{file}" for name, file in adaptive_files.items()
        }
        outcome["adaptive"] = adaptive_summary(rows)
    return {**outcome, "artifacts": artifacts}


def _test_sample(
    context: JobContext, params: _RobustnessRequest, record: ModelRecord
) -> tuple[ImageDataset, str]:
    """The seeded random sample of the dataset's test split a robustness job measures on,
    and the dataset's name."""
    data = _dataset(context, params.dataset_id, record.image_size, record.channels)
    check_same_classes(record.class_names, data["class_names"])
    if "test" not in data["splits"]:
        raise JobInputError(f"dataset {params.dataset_id} has no test split")
    return data["splits"]["test"].sample(params.limit, params.seed), data["name"]


def model_report_job(context: JobContext, params: ModelReportParams) -> dict[str, Any]:
    """The handover report (``report/report.html``, self-contained) and its parts."""
    check_robustness_params(params)
    model, _, record = _model(context.storage, params.model_id)
    dataset, dataset_name = _test_sample(context, params, record)
    inputs = ReportInputs(model, record.name, dataset, dataset_name, seed=params.seed)
    if params.detector_id is not None:
        detector_record = find_record(
            context.storage, DetectorRecord, params.detector_id, "detector"
        )
        inputs.detector = robustness_detector(context.storage, params)
        inputs.detector_name = detector_record.name
        inputs.adversarial = load_adversarial_set(
            _set_folder(context.storage, detector_record.set_job_id)
        )
    out = context.folder / "report"
    report = measure_report(
        inputs, out, context.progress, attacks=params.attacks, epsilons=params.eps,
        l2_epsilons=params.l2_eps, defenses=params.defenses,
        adaptive_steps=params.adaptive_steps, unseen=params.unseen_attacks,
    )  # fmt: skip
    return {
        "clean_accuracy": report.clean.accuracy,
        "robustness": json_ready(report.robustness.to_dict()),
        "adaptive": adaptive_summary(report.adaptive) if report.adaptive else None,
        "artifacts": {"report": f"report/{REPORT_FILE}"},
    }


def adversarial_training_job(
    context: JobContext, params: AdversarialTrainingParams
) -> dict[str, Any]:
    """Train adversarially (resuming from the job's checkpoint after a worker died),
    register the model, and compare it with its start under PGD on the test split."""
    spec: ModelSpec | None = None
    if params.model_id is not None:
        model, spec, _ = _model(context.storage, params.model_id)
        if spec is None:
            raise JobInputError(
                f"model {params.model_id} is a TorchScript archive; adversarial training needs "
                "a built-in-architecture model (safetensors + JSON) to train"
            )
    data = _dataset(
        context,
        params.dataset_id,
        spec.image_size if spec else None,
        spec.in_channels if spec else 1,
    )
    splits: dict[str, ImageDataset] = data["splits"]
    if spec is None:
        model, spec = new_model(splits["train"], params.seed)
    check_same_classes(spec.class_names, data["class_names"])
    config = params.train_config()
    trained = train_adversarially(
        model,
        spec,
        splits["train"],
        splits["test"],
        config,
        context.folder,
        context.progress,
        start_name=None if params.model_id is None else "start",
        comparison_images=params.evaluation_limit,
    )
    label = adversarial_label(config)
    model_id = record_model(
        context, spec, trained.summary, trained.folder,
        name=params.name or f"{label} (ε={format_eps(params.eps)}) on {data['name']}",
        origin="adversarial_training", dataset_id=params.dataset_id,
    )  # fmt: skip
    return {
        "model_id": model_id,
        **trained.summary,
        "comparison": json_ready(trained.comparison.to_dict()),
        "artifacts": MODEL_ARTIFACTS,
    }


# --- the job registry ------------------------------------------------------------------------


def check_train_classifier(storage: Storage, params: TrainClassifierParams) -> None:
    find_record(storage, DatasetRecord, params.dataset_id, "dataset")


def check_build_set(storage: Storage, params: BuildSetParams) -> None:
    model, _ = matching_model_and_dataset(storage, params.model_id, params.dataset_id)
    build_config(params, model)


def check_train_detector(storage: Storage, params: TrainDetectorParams) -> None:
    succeeded_set_job(storage, params.set_job_id)


def check_evaluate(storage: Storage, params: EvaluateParams) -> None:
    detector = find_record(storage, DetectorRecord, params.detector_id, "detector")
    unseen_attacks(params, detector.attack_names)
    if params.set_job_id is not None:
        succeeded_set_job(storage, params.set_job_id)


def check_evaluate_robustness(storage: Storage, params: _RobustnessRequest) -> None:
    matching_model_and_dataset(storage, params.model_id, params.dataset_id)
    check_robustness_params(params)
    if params.detector_id is not None:
        robustness_detector(storage, params)


def check_model_report(storage: Storage, params: ModelReportParams) -> None:
    check_evaluate_robustness(storage, params)
    if params.detector_id is not None:
        record = find_record(storage, DetectorRecord, params.detector_id, "detector")
        unseen_attacks(params, record.attack_names)
        succeeded_set_job(storage, record.set_job_id)


def check_adversarial_training(storage: Storage, params: AdversarialTrainingParams) -> None:
    if params.model_id is None:
        find_record(storage, DatasetRecord, params.dataset_id, "dataset")
    else:
        matching_model_and_dataset(storage, params.model_id, params.dataset_id)


@dataclass(frozen=True)
class JobKind(Generic[ParamsT]):
    """One job type, declared once: what the API accepts and checks, which queue runs it
    and what it does. The API, the worker and the CLI read :data:`JOB_KINDS`."""

    params: type[ParamsT]
    result: type[BaseModel]
    """What the job returns (:mod:`advguard.jobs.results`): the worker checks the result
    against it before storing it, the API documents it."""
    queue: str
    check: Callable[[Storage, ParamsT], None]
    """Refuse (:class:`JobInputError`, or ``ValueError`` for bad attack names or budgets)
    a job whose dataset, model, set or detector is missing or unusable: the API runs it
    before queueing, with the messages the job itself would fail with."""
    body: Callable[[JobContext, ParamsT], dict[str, Any]] | None
    """The work, returning the job's result; ``None`` for a job the worker splits into
    chunks itself (the adversarial set: :func:`plan_set_job`, :func:`build_set_chunk`,
    :func:`finish_set`)."""
    stages: tuple[str, ...]
    """The stages the job goes through, in order, as its progress labels begin: the API
    shows "stage 2 of 3" and a progress that never goes back."""

    @property
    def type(self) -> str:
        return str(self.params.model_fields["type"].default)


JOB_KINDS: dict[str, JobKind[Any]] = {
    kind.type: kind
    for kind in (
        JobKind(
            TrainClassifierParams,
            TrainClassifierResult,
            "training",
            check_train_classifier,
            train_classifier_job,
            ("training",),
        ),
        JobKind(
            BuildSetParams,
            BuildSetResult,
            "attacks",
            check_build_set,
            None,
            SET_STAGES,
        ),
        JobKind(
            TrainDetectorParams,
            TrainDetectorResult,
            "training",
            check_train_detector,
            train_detector_job,
            DETECTOR_STAGES,
        ),
        JobKind(
            EvaluateParams,
            EvaluateResult,
            "evaluation",
            check_evaluate,
            evaluate_job,
            REPORT_STAGES,
        ),
        JobKind(
            EvaluateRobustnessParams,
            EvaluateRobustnessResult,
            "evaluation",
            check_evaluate_robustness,
            evaluate_robustness_job,
            ("attacking", "adaptive attack"),
        ),
        JobKind(
            ModelReportParams,
            ModelReportResult,
            "evaluation",
            check_model_report,
            model_report_job,
            MODEL_REPORT_STAGES,
        ),
        JobKind(
            AdversarialTrainingParams,
            AdversarialTrainingResult,
            "training",
            check_adversarial_training,
            adversarial_training_job,
            ("adversarial training", "comparing"),
        ),
    )
}
"""Every job type by name."""

if TYPE_CHECKING:  # built from the registry at run time, which type checkers cannot follow
    JobParams = _Params
    JobType = str
else:
    JobParams = Annotated[
        Union[tuple(kind.params for kind in JOB_KINDS.values())],  # noqa: UP007
        Field(discriminator="type"),
    ]
    """A job request: the parameters of one of the registry's types, told apart by ``type``."""
    JobType = Literal[tuple(JOB_KINDS)]
    """The registry's job type names."""


# --- job records ---------------------------------------------------------------------------


def checked_result(job_type: str, result: dict[str, Any]) -> dict[str, Any]:
    """A job's result as stored: checked against its type's result model (a body that
    drifted from it fails its job, not the API that shows it later)."""
    return JOB_KINDS[job_type].result.model_validate(result).model_dump(mode="json")


def mark_started(storage: Storage, job_id: str, worker: str, max_attempts: int) -> bool:
    """Move a queued (or re-delivered) job to running; ``False`` if it must not run: it
    was cancelled, already finished, or its worker died ``max_attempts`` times."""
    with storage.db.session() as session:
        record = session.get(JobRecord, job_id)
        if record is None or record.state in FINISHED_STATES:
            return False
        if record.attempts >= max_attempts:
            record.state, record.finished_at = "failed", utc_now()
            record.error = (
                f"the worker running this job stopped {record.attempts} times "
                "(killed, out of memory or over the time limit); not retrying"
            )
            return False
        record.state, record.worker = "running", worker
        record.attempts += 1
        record.started_at = record.started_at or utc_now()
        return True


def mark_finished(
    storage: Storage, job_id: str, state: str, result: dict[str, Any] | None, error: str | None
) -> None:
    """Record the outcome of a running job. A job that already ended keeps its outcome:
    a cancelled job stays cancelled, and a late duplicate delivery cannot overwrite it."""
    with storage.db.session() as session:
        record = session.get(JobRecord, job_id)
        if record is None or record.state != "running":
            return
        record.state, record.finished_at = state, utc_now()
        record.result, record.error = result, error


def is_running(storage: Storage, job_id: str) -> bool:
    """Whether the job is running (chunks of a split job check this before working)."""
    with storage.db.session() as session:
        record = session.get(JobRecord, job_id)
        return record is not None and record.state == "running"


def readable_error(error: BaseException) -> str:
    """What a user sees for a failed job: our own messages as they are, others typed."""
    if isinstance(error, JobInputError | ValueError):
        return str(error)
    return f"{type(error).__name__}: {error}"
