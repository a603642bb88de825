"""Response schemas of the HTTP API (request bodies reuse :mod:`advguard.jobs` params)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, StringConstraints, TypeAdapter, create_model

from advguard.evaluation.detection_report import DetectionReport
from advguard.jobs import JOB_KINDS, JobKind
from advguard.jobs.results import dataclass_model
from advguard.storage import JobState


class RenameIn(BaseModel):
    """A new name for a dataset, model, detector or job."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ErrorOut(BaseModel):
    """Every error: ``{"detail": "what is wrong"}``."""

    detail: Any


class SkippedOut(BaseModel):
    path: str
    reason: str


class ThumbnailOut(BaseModel):
    class_name: str
    url: str


class DatasetOut(BaseModel):
    id: str
    name: str
    bundled: bool
    class_names: list[str]
    counts: dict[str, dict[str, int]] = Field(
        description="Images per split and class (empty for the bundled set until it is opened)."
    )
    image_size: int
    channels: int
    created_at: datetime


class VolumeOut(BaseModel):
    """A NIfTI volume of the dataset, cut into slices."""

    file: str
    shape: list[int]
    axis: int = Field(description="The axis the slices were taken across.")
    slices: list[int] = Field(description="Indices of the slices kept (the others were empty).")
    window: list[float] = Field(
        description="The stored values mapped to 0 and 1: the 0.5th and 99.5th percentiles "
        "of the volume's non-zero voxels (values beyond are clipped, not wrapped)."
    )


class DatasetDetailOut(DatasetOut):
    thumbnails: list[ThumbnailOut]
    skipped: list[SkippedOut]
    volumes: list[VolumeOut]


class ModelOut(BaseModel):
    id: str
    name: str
    origin: Literal["torchscript", "onnx", "safetensors", "trained", "adversarial_training"]
    class_names: list[str]
    image_size: int
    channels: int
    dataset_id: str | None
    job_id: str | None
    metrics: dict[str, Any]
    created_at: datetime


class ProgressOut(BaseModel):
    stage: str
    done: int = Field(description="Done in this stage, in its units (images, epochs, …)")
    total: int
    fraction: float = Field(description="done / total, 0 when the total is not known yet")
    stage_number: int = Field(description="Which of the job's stages this is (1-based)")
    stage_count: int
    overall: float = Field(
        description="Of the whole job, each stage an equal share: it never goes back"
    )
    eta_s: float | None = Field(
        description="Seconds left, estimated from the time so far and the overall progress"
    )


class JobOutBase(BaseModel):
    """What every job shows; each job type adds its ``type``, ``params`` and ``result``."""

    id: str
    name: str = Field(description="What the user calls it; renamed with PATCH /jobs/{id}")
    state: JobState
    progress: ProgressOut
    error: str | None
    artifacts: dict[str, str] = Field(description="Artifact name → download URL")
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _job_out(kind: JobKind[Any]) -> type[BaseModel]:
    """The response model of one job type, from its registry entry."""
    title = "".join(part.title() for part in kind.type.split("_"))
    fields: dict[str, Any] = {
        "type": (Literal[kind.type], ...),
        "params": (kind.params, ...),
        "result": (kind.result | None, ...),
    }
    return create_model(f"{title}Job", __base__=JobOutBase, __doc__=kind.params.__doc__, **fields)


JobOut: Any = Annotated[
    Union[tuple(_job_out(kind) for kind in JOB_KINDS.values())],  # noqa: UP007 (built at run time)
    Field(discriminator="type"),
]
"""A job as the API shows it: one model per job type (:data:`advguard.jobs.JOB_KINDS`),
told apart by ``type``, with that type's parameters and result."""
JOB_OUT: TypeAdapter[Any] = TypeAdapter(JobOut)

JobListOut = create_model("JobListOut", items=(list[JobOut], ...), total=(int, ...))


class DetectorOut(BaseModel):
    id: str
    name: str
    model_id: str
    set_job_id: str
    job_id: str | None
    attack_names: list[str]
    threshold: float
    report_job_id: str | None
    created_at: datetime


report_fields: dict[str, Any] = {
    "report": (
        dataclass_model(DetectionReport) | None,
        Field(description="The latest evaluate job's report"),
    ),
    "report_artifacts": (dict[str, str], ...),
}
DetectorDetailOut = create_model("DetectorDetailOut", __base__=DetectorOut, **report_fields)


class QueryAttackOut(BaseModel):
    """What the stream of this client's queries says (the query watch)."""

    suspected: bool = Field(
        description="The client is flagged: within the window one of its images nearly "
        "duplicated the threshold's number of its earlier queries, as a query-based "
        "black-box attack's images do"
    )
    matches: int = Field(
        description="Earlier queries of this client, within the window, that this image "
        "nearly duplicates (an identical image sent again counts as one query, not a match)"
    )
    window: int = Field(description="The window, in seconds")


class VerdictOut(BaseModel):
    file: str
    is_adversarial: bool
    score: float = Field(description="Probability that the image is adversarial")
    attack: str | None = Field(description="Most likely attack, or null when judged clean")
    attack_probabilities: dict[str, float]
    label: str | None = Field(description="The classifier's class, or null when rejected")
    class_probabilities: dict[str, float]
    unlike_training: list[str] | None = Field(
        description="How the image differs from the scans the guard was fitted on (each "
        "measure outside their range, in words); empty when it looks like them, null for a "
        "guard saved without those ranges"
    )
    query_attack: QueryAttackOut | None = Field(
        default=None,
        description="The query watch's view of this client's stream; null when the watch "
        "is off or its Redis unreachable (predict answers without it), and on the single-"
        "image attack endpoint",
    )


class PredictOut(BaseModel):
    detector_id: str
    threshold: float
    verdicts: list[VerdictOut]


class FlaggedClientOut(BaseModel):
    client: str = Field(
        description="``address:<ip>``, or ``key:<hash>`` for a client with the API key"
    )
    first_flagged: datetime
    last_flagged: datetime
    matches: int = Field(description="The most earlier queries one of its images duplicated")
    queries: int = Field(description="Its queries within the window when last flagged")


class QueryAttacksOut(BaseModel):
    """Clients the query watch flagged within the window."""

    enabled: bool
    policy: Literal["flag", "refuse"]
    window: int
    flag_at: int = Field(description="Matches of one image that flag its client")
    clients: list[FlaggedClientOut]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    api: Literal["ok"]
    broker: str
    database: str
    version: str


class AttackOut(BaseModel):
    """An image attacked against the guard's classifier, and the guard's verdict on both."""

    attack: str
    params: dict[str, Any]
    original: VerdictOut
    adversarial: VerdictOut
    adversarial_png: str = Field(description="The attacked image, 8-bit PNG, base64")
    perturbation_png: str = Field(
        description="The perturbation amplified to the full grey range, PNG, base64"
    )
    linf: float = Field(description="L∞ size of the perturbation after 8-bit quantisation")
    l2: float


class AttackInfoOut(BaseModel):
    name: str
    norm: str = Field(description="linf or l2: the norm its budget is measured in")
    summary: str
    defaults: dict[str, Any]


_ERROR_MEANINGS = {
    400: "Empty or malformed upload",
    401: "Missing or wrong API key",
    404: "No such record",
    409: "Conflicts with the record's state",
    413: "Upload over the size limit",
    415: "Not a readable image or model file",
    422: "Invalid parameters or unusable upload",
    429: "Refused: this client's queries look like a black-box attack",
    503: "The job queue (Redis) is unreachable",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error codes, each with the ``{"detail": …}`` body."""
    return {code: {"model": ErrorOut, "description": _ERROR_MEANINGS[code]} for code in codes}
