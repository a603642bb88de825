"""Classifiers: uploaded as TorchScript or safetensors (never pickle), or trained by a job."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select

from advguard.api.deps import (
    ComputeDep,
    SettingsDep,
    StorageDep,
    not_found,
    require_read,
    require_write,
    save_upload,
)
from advguard.api.routers.naming import add_rename_route
from advguard.api.schemas import ModelOut, errors
from advguard.models import ARCHITECTURE, ModelLoadError, ModelSpec, load_classifier
from advguard.models.io import SPEC_FILE, WEIGHTS_FILE
from advguard.models.onnx_import import convert_onnx, is_onnx
from advguard.storage import ModelRecord, Storage, new_id

router = APIRouter(prefix="/models", tags=["models"])
TORCHSCRIPT_FILE = "model.pt"


class ModelSpecIn(BaseModel):
    """The description a model needs: its classes and input shape (and, for safetensors
    weights, the built-in architecture's settings)."""

    model_config = ConfigDict(extra="forbid")
    class_names: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=2, max_length=1000
    )
    in_channels: int = Field(1, ge=1, le=3)
    image_size: int = Field(128, ge=16, le=1024)
    width: int = Field(16, ge=1, le=256)
    stage_convs: list[Annotated[int, Field(ge=1, le=8)]] = Field(
        default_factory=lambda: [1, 1, 1, 1, 1], min_length=1, max_length=8
    )
    dropout: float = Field(0.2, ge=0, lt=1)
    stem_stride: int = Field(1, ge=1, le=4)
    mean: list[float] = Field(default_factory=lambda: [0.5], min_length=1, max_length=3)
    std: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [0.25], min_length=1, max_length=3
    )
    architecture: str = ARCHITECTURE

    @field_validator("class_names")
    @classmethod
    def distinct(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError("class names must be distinct")
        return names


def _out(record: ModelRecord) -> ModelOut:
    return ModelOut.model_validate(record, from_attributes=True)


def _parse_spec(text: str | None) -> ModelSpec | None:
    if text is None:
        return None
    try:
        return ModelSpec(**ModelSpecIn.model_validate_json(text).model_dump())
    except ValidationError as error:
        raise HTTPException(
            422, f"spec is not a valid model description: {error.errors(include_url=False)}"
        ) from None


def _check(path: Path, declared: ModelSpec | None) -> ModelSpec:
    """Load the model the safe way and run one forward pass; return its description."""
    try:
        model, embedded = load_classifier(path)
    except ModelLoadError as error:
        raise HTTPException(422, str(error).replace(str(path.parent), "upload")) from None
    spec = declared or embedded
    if spec is None:
        raise HTTPException(
            422, "this TorchScript archive has no embedded description: send `spec` (JSON)"
        )
    probe = torch.rand(2, spec.in_channels, spec.image_size, spec.image_size, requires_grad=True)
    try:
        logits = model(probe)
    except Exception as error:  # any failure of user code in the probe is the upload's fault
        raise HTTPException(
            422, f"the model fails on a {tuple(probe.shape)} input: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, spec.num_classes):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise HTTPException(
            422, f"the model returns {shape} for 2 images; expected (2, {spec.num_classes}) logits"
        )
    _check_gradient(model, probe, logits)
    return spec


def _check_gradient(model: torch.nn.Module, probe: torch.Tensor, logits: torch.Tensor) -> None:
    """Every attack but the black-box ones, adversarial training and the detector's features
    follow the model's input gradient: refuse a model that has none (an argmax, a
    ``detach`` or a ``no_grad`` inside)."""
    no_gradient = HTTPException(
        422,
        "the model has no gradient with respect to its input (an argmax, detach() or "
        "no_grad inside its forward?): attacks and the detector need it; export the "
        "network that returns the logits",
    )
    if not logits.requires_grad:
        raise no_gradient
    try:
        (gradient,) = torch.autograd.grad(logits.log_softmax(1)[:, 0].sum(), probe)
    except RuntimeError:
        raise no_gradient from None
    if not bool(torch.isfinite(gradient).all()) or not bool(gradient.abs().sum() > 0):
        raise no_gradient


def _save_checked(
    folder: Path, upload_path: Path, spec: ModelSpec | None
) -> tuple[str, Path, ModelSpec]:
    """Tell TorchScript, safetensors and ONNX apart by content and check the model works."""
    with upload_path.open("rb") as upload:
        head = upload.read(9)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        target = folder / TORCHSCRIPT_FILE
        upload_path.rename(target)
        return "torchscript", target, _check_torchscript(target, spec)
    # safetensors: an 8-byte little-endian header length, then the JSON header
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        if spec is None:
            raise HTTPException(
                422, "safetensors weights need `spec` (JSON) describing the built-in architecture"
            )
        upload_path.rename(folder / WEIGHTS_FILE)
        (folder / SPEC_FILE).write_text(json.dumps(spec.to_dict()))
        return "safetensors", folder, _check(folder, None)
    if is_onnx(head):
        if spec is None:
            raise HTTPException(
                422, "an ONNX model needs `spec` (JSON): its class_names, in_channels, image_size"
            )
        target = folder / TORCHSCRIPT_FILE
        example = torch.rand(2, spec.in_channels, spec.image_size, spec.image_size)
        try:
            converted = convert_onnx(upload_path, example)
        except ModelLoadError as error:
            raise HTTPException(422, str(error)) from None
        torch.jit.save(converted, str(target))
        upload_path.unlink()
        return "onnx", target, _check_torchscript(target, spec)
    raise HTTPException(
        415,
        "not a model file: send a TorchScript archive (torch.jit.save), an ONNX model or "
        "safetensors weights",
    )


def _check_torchscript(target: Path, spec: ModelSpec | None) -> ModelSpec:
    checked = _check(target, spec)
    # Stored beside the archive whatever it embeds, so that jobs read what was declared.
    (target.parent / SPEC_FILE).write_text(json.dumps(checked.to_dict()))
    return checked


@router.get("", response_model=list[ModelOut], dependencies=[Depends(require_read)])
def list_models(storage: StorageDep) -> list[ModelOut]:
    """Every model, newest first."""
    with storage.db.session() as session:
        records = session.scalars(select(ModelRecord).order_by(ModelRecord.created_at.desc()))
        return [_out(record) for record in records]


@router.post(
    "",
    response_model=ModelOut,
    status_code=201,
    dependencies=[Depends(require_write)],
    responses=errors(400, 413, 415, 422),
)
async def upload_model(
    storage: StorageDep,
    settings: SettingsDep,
    compute: ComputeDep,
    file: Annotated[
        UploadFile, File(description="TorchScript archive, ONNX model or .safetensors weights")
    ],
    spec: Annotated[
        str | None,
        Form(description="Model description as JSON (class_names, in_channels, image_size, …)"),
    ] = None,
    name: Annotated[str | None, Form(max_length=200)] = None,
) -> ModelOut:
    """Upload a classifier. It is loaded without unpickling and probed with one batch; an
    ONNX model is converted to differentiable TorchScript first (an operator that cannot
    be converted is named in the 422)."""
    declared = _parse_spec(spec)
    model_id = new_id()
    folder = storage.folder("models", model_id)
    try:
        upload_path = folder / "upload.bin"
        await save_upload(file, upload_path, settings.max_model_bytes, "model file")
        origin, path, checked = await compute.run(_save_checked, folder, upload_path, declared)
        record = ModelRecord(
            id=model_id,
            name=name or file.filename or origin,
            origin=origin,
            path=str(path),
            class_names=checked.class_names,
            image_size=checked.image_size,
            channels=checked.in_channels,
        )
        with storage.db.session() as session:
            session.add(record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _out(record)


def get_model_record(storage: Storage, model_id: str) -> ModelRecord:
    with storage.db.session() as session:
        record = session.get(ModelRecord, model_id)
    if record is None:
        raise not_found("model", model_id)
    return record


@router.get(
    "/{model_id}",
    response_model=ModelOut,
    dependencies=[Depends(require_read)],
    responses=errors(404),
)
def get_model(model_id: str, storage: StorageDep) -> ModelOut:
    """One model with its classes, input shape and (for trained ones) test metrics."""
    return _out(get_model_record(storage, model_id))


@router.delete(
    "/{model_id}", status_code=204, dependencies=[Depends(require_write)], responses=errors(404)
)
def delete_model(model_id: str, storage: StorageDep) -> Response:
    """Delete a model and its files (detectors already built keep their own copy)."""
    with storage.db.session() as session:
        record = session.get(ModelRecord, model_id)
        if record is None:
            raise not_found("model", model_id)
        session.delete(record)
    shutil.rmtree(storage.folder("models", model_id), ignore_errors=True)
    return Response(status_code=204)


add_rename_route(router, ModelRecord, "model", ModelOut, lambda _storage, record: _out(record))
