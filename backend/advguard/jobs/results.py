"""What each job type returns, as pydantic models derived from the core's own dataclasses.

The job registry (:data:`advguard.jobs.JOB_KINDS`) names one of these per job type: the
worker checks a job's result against it before storing it, and the API publishes it in
the OpenAPI document, from which the web app's types are generated. Deriving the models
from the dataclasses (the robustness result, the detection report, …) keeps the three in
step without writing any shape twice.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, create_model

from advguard.evaluation import ModelComparison, RobustnessResult, RobustnessRow
from advguard.evaluation.adaptive import AdaptiveSummary
from advguard.evaluation.detection_report import DetectionReport
from advguard.evaluation.metrics import Finite, TrainingSummary


class ResultModel(BaseModel):
    """Base of every result model; keys it does not name are kept (a derived label such
    as a row's ``setting``), and the document lists every field as present in answers."""

    model_config = ConfigDict(extra="allow", json_schema_serialization_defaults_required=True)


_MODELS: dict[type, type[BaseModel]] = {}


def json_type(annotation: Any) -> Any:
    """The JSON-side type of a dataclass field's type: ``float`` may be ``None`` (a NaN is
    written as ``null``) unless marked :data:`~advguard.evaluation.metrics.Finite`,
    dataclasses become models, containers are mapped item by item."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return float if "finite" in annotation.__metadata__ else json_type(args[0])
    if annotation is float:
        return float | None
    if annotation in (int, str, bool, type(None)) or origin is Literal:
        return annotation
    if annotation is object or annotation is Any:
        return Any
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return dataclass_model(annotation)
    if origin is list:
        return list[json_type(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[args[0], json_type(args[1])]  # type: ignore[misc,valid-type]
    if origin in (Union, types.UnionType):
        mapped = tuple(json_type(arg) for arg in args)
        return Union[mapped]  # noqa: UP007 (a tuple of types, built at run time)
    raise TypeError(f"no JSON type for {annotation!r}")


def _field(annotation: Any, default: Any = ...) -> tuple[Any, Any]:
    mapped = json_type(annotation)
    if default is ... and type(None) in get_args(mapped):
        default = None  # optional in the document as well as in the data
    return mapped, default


def dataclass_model(kind: type, name: str | None = None, **extra: Any) -> type[BaseModel]:
    """The pydantic model of what ``dataclasses.asdict`` (then JSON) makes of ``kind``,
    with ``extra`` fields (name → type) added; one model per dataclass and name."""
    if name is None and kind in _MODELS:
        return _MODELS[kind]
    hints = get_type_hints(kind, include_extras=True)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(kind):
        if item.default is not dataclasses.MISSING:
            fields[item.name] = _field(hints[item.name], item.default)
        elif item.default_factory is not dataclasses.MISSING:
            fields[item.name] = _field(hints[item.name], item.default_factory())
        else:
            fields[item.name] = _field(hints[item.name])
    fields |= {key: _field(value) for key, value in extra.items()}
    model = create_model(
        name or kind.__name__, __base__=ResultModel, __doc__=kind.__doc__, **fields
    )
    if name is None:
        _MODELS[kind] = model
    return model


def result_model(name: str, doc: str, **fields: Any) -> type[BaseModel]:
    """A job's result model with these fields (name → type, mapped as by :func:`json_type`)."""
    definitions: dict[str, Any] = {key: _field(value) for key, value in fields.items()}
    return create_model(name, __base__=ResultModel, __doc__=doc, **definitions)


Artifacts = dict[str, str]
"""Artifact name → path inside the job's folder (the API turns them into URLs)."""

TrainClassifierResult = dataclass_model(
    TrainingSummary, "TrainClassifierResult", model_id=str, artifacts=Artifacts
)
BuildSetResult = result_model(
    "BuildSetResult",
    "The set's size, its attacks and the robustness table of the attacks in it.",
    images=int,
    attack_names=list[str],
    robustness=list[RobustnessRow],
    artifacts=Artifacts,
)
TrainDetectorResult = result_model(
    "TrainDetectorResult",
    "The detector registered, and its threshold.",
    detector_id=str,
    threshold=Finite,
)
EvaluateResult = result_model(
    "EvaluateResult",
    "The detection report on a set's test split.",
    report=DetectionReport,
    artifacts=Artifacts,
)
EvaluateRobustnessResult = result_model(
    "EvaluateRobustnessResult",
    "Accuracy under attack over ε and, with a detector, the adaptive table.",
    robustness=RobustnessResult,
    adaptive=AdaptiveSummary | None,
    artifacts=Artifacts,
)
ModelReportResult = result_model(
    "ModelReportResult",
    "The handover report (artifact ``report``: one self-contained HTML file) and its "
    "headline numbers: clean accuracy, robustness (AutoAttack included), the adaptive table.",
    clean_accuracy=float,
    robustness=RobustnessResult,
    adaptive=AdaptiveSummary | None,
    artifacts=Artifacts,
)
AdversarialTrainingResult = dataclass_model(
    TrainingSummary,
    "AdversarialTrainingResult",
    model_id=str,
    comparison=ModelComparison,
    artifacts=Artifacts,
)
