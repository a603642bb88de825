"""Predict: synchronous detect-then-classify for uploaded images (PNG, JPEG, DICOM) and
volumes (NIfTI, one verdict per slice), and
attacking one image to see the guard catch it."""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
from typing import Annotated

import torch
from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from PIL import Image
from sqlalchemy import select
from torch import Tensor

from advguard.api.deps import (
    GuardsDep,
    QueryClientDep,
    QueryWatchDep,
    SettingsDep,
    StorageDep,
    read_upload,
    require_read,
)
from advguard.api.predictor import Decode, GuardPool, ServedDetector
from advguard.api.query_watch import QueryAttackCheck, QueryWatch
from advguard.api.schemas import AttackOut, PredictOut, VerdictOut, errors
from advguard.attacks import AttackError, attack_class, create_budget_attack
from advguard.config import Settings
from advguard.data import ImageDecodeError, decode_upload, to_uint8
from advguard.data.volumes import DEFAULT_SLICE_AXIS, decode_nifti, is_nifti, is_nifti_data
from advguard.guard import Guard, Verdict
from advguard.jobs import Budget
from advguard.storage import DetectorRecord, ModelRecord, Storage

router = APIRouter(tags=["predict"])


def _lookup(storage: Storage, settings: Settings, detector_id: str | None) -> ServedDetector:
    """The detector (the newest when no id is given) and its classifier's image side and
    channels, in one database round trip."""
    with storage.db.session() as session:
        if detector_id is not None:
            record = session.get(DetectorRecord, detector_id)
            if record is None:
                raise HTTPException(404, f"detector {detector_id!r} does not exist")
        else:
            record = session.scalars(
                select(DetectorRecord).order_by(DetectorRecord.created_at.desc()).limit(1)
            ).first()
            if record is None:
                raise HTTPException(
                    409, "no detector yet: train one (a train_detector job) before calling predict"
                )
        model = session.get(ModelRecord, record.model_id)
        return ServedDetector(
            id=record.id,
            path=record.path,
            threshold=record.threshold,
            image_size=settings.image_size if model is None else model.image_size,
            channels=1 if model is None else model.channels,
        )


async def _served(
    guards: GuardPool, storage: Storage, settings: Settings, detector_id: str | None
) -> ServedDetector:
    """:func:`_lookup`, from the pool's cache when the id is given and was seen before."""
    cached = guards.records.get(detector_id) if detector_id is not None else None
    if cached is not None:
        return cached
    served = await run_in_threadpool(_lookup, storage, settings, detector_id)
    guards.records[served.id] = served
    return served


@dataclasses.dataclass
class _Decoded:
    """What ``decode()`` made of a request's uploads: the images the guard judges (a
    volume gives one per non-empty slice) and a name for each verdict."""

    images: Tensor | None = None
    names: list[str] = dataclasses.field(default_factory=list)


def _decode(
    served: ServedDetector,
    settings: Settings,
    payloads: list[tuple[str, bytes]],
    slice_axis: int,
    decoded: _Decoded,
) -> Tensor:
    """The uploads decoded to the detector's input size (on the compute thread: resizing a
    large upload is a parallel torch op, see ``ComputeThreads``); kept in ``decoded``."""
    images: list[Tensor] = []
    names: list[str] = []
    for name, data in payloads:
        try:
            if is_nifti(name) or is_nifti_data(data):
                slices, volume = decode_nifti(
                    data,
                    name,
                    axis=slice_axis,
                    channels=served.channels,
                    size=served.image_size,
                    max_voxels=settings.max_image_pixels,
                )
                images.extend(slices)
                names.extend(f"{name} [slice {index}]" for index in volume.slices)
            else:
                images.append(
                    decode_upload(
                        data,
                        channels=served.channels,
                        size=served.image_size,
                        max_pixels=settings.max_image_pixels,
                    )
                )
                names.append(name)
        except ImageDecodeError as error:
            raise HTTPException(415, f"{name!r}: {error}") from None
        if len(images) > settings.max_predict_images:
            raise HTTPException(
                413,
                f"{len(images)} images (a volume gives one per non-empty slice) in one "
                f"request; the limit is {settings.max_predict_images}",
            )
    decoded.images, decoded.names = torch.stack(images), names
    return decoded.images


async def _read_files(settings: Settings, files: list[UploadFile]) -> list[tuple[str, bytes]]:
    return [
        (upload.filename or "image", await read_upload(upload, settings.max_image_bytes, "image"))
        for upload in files
    ]


@router.post(
    "/predict",
    response_model=PredictOut,
    dependencies=[Depends(require_read)],
    responses=errors(400, 404, 409, 413, 415, 429),
)
async def predict(
    guards: GuardsDep,
    storage: StorageDep,
    settings: SettingsDep,
    watch: QueryWatchDep,
    client: QueryClientDep,
    files: Annotated[
        list[UploadFile],
        File(description="PNG, JPEG or DICOM images, or NIfTI volumes (.nii, .nii.gz)"),
    ],
    detector_id: Annotated[
        str | None, Query(description="Detector to use; the newest one when omitted")
    ] = None,
    slice_axis: Annotated[
        int, Query(ge=0, le=2, description="A NIfTI volume's slices are taken across this axis")
    ] = DEFAULT_SLICE_AXIS,
) -> PredictOut:
    """Detect, then classify: a clean image gets the classifier's class and probabilities;
    an adversarial one is rejected (``label`` null) with the attack named. Each verdict
    A NIfTI volume gets one verdict per non-empty slice (``"<file> [slice k]"``), windowed
    as datasets are. Each verdict
    also says whether this client's stream of queries looks like a black-box attack
    (``query_attack``); with ``ADVGUARD_QUERY_WATCH_POLICY=refuse`` a flagged client gets
    429 instead."""
    if len(files) > settings.max_predict_images:
        raise HTTPException(
            413, f"{len(files)} files in one request; the limit is {settings.max_predict_images}"
        )
    payloads = await _read_files(settings, files)
    served = await _served(guards, storage, settings, detector_id)
    decoded = _Decoded()
    decode = functools.partial(_decode, served, settings, payloads, slice_axis, decoded)
    checks: list[QueryAttackCheck | None] = []
    if watch is not None and watch.policy == "refuse":
        decode = functools.partial(_decode_and_watch, decode, watch, client, checks)
    verdicts = await guards.predict(served.id, served.path, decode, len(files))
    if watch is not None and watch.policy == "flag" and decoded.images is not None:
        # Flag policy: after the model, which leaves the CPU warm (right after an idle
        # wait, the fingerprint cost predict twice as much on 2 cores); on the event loop,
        # since a hop to another thread costs more than the check
        checks = watch.check(client, decoded.images)
    checks = checks or [None] * len(verdicts)
    return PredictOut(
        detector_id=served.id,
        threshold=served.threshold,
        verdicts=[
            _verdict_out(name, verdict, check)
            for name, verdict, check in zip(decoded.names, verdicts, checks, strict=True)
        ],
    )


def _decode_and_watch(
    decode: Decode,
    watch: QueryWatch,
    client: str,
    checks: list[QueryAttackCheck | None],
) -> Tensor:
    """Decode, then let the query watch see the images, its answers going to ``checks``
    (on the compute thread, before the model runs: a refused request costs no forward
    pass)."""
    images = decode()
    found = watch.check(client, images)
    if any(check is not None and check.suspected for check in found):
        raise HTTPException(
            429,
            f"query attack suspected: within the last {watch.window_s} s, {client} sent an "
            f"image that nearly duplicates {watch.flag_at} or more of its earlier queries, as "
            "query-based black-box attacks do; predict is refused until "
            f"{watch.window_s} s after the last such query (an operator can clear the flag "
            "on the Live test page or with DELETE /api/v1/query-attacks/{client})",
            headers={"Retry-After": str(watch.window_s)},
        )
    checks.extend(found)
    return images


def _verdict_out(file: str, verdict: Verdict, check: QueryAttackCheck | None = None) -> VerdictOut:
    return VerdictOut.model_validate(
        {
            "file": file,
            **verdict.to_dict(),
            "query_attack": None if check is None else dataclasses.asdict(check),
        }
    )


def _png_base64(image: Tensor) -> str:
    buffer = io.BytesIO()
    pixels = to_uint8(image).permute(1, 2, 0).squeeze(-1).numpy()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _attack_one(guard: Guard, image: Tensor, name: str, eps: float | None) -> AttackOut:
    """Attack ``image`` (1×C×H×W) untargeted against the classifier's own answer."""
    attack = create_budget_attack(name, guard.classifier, eps)
    with torch.no_grad():
        label = guard.classifier(image).argmax(1)
    adversarial = to_uint8(attack(image, label)).float() / 255.0
    original, attacked = guard.predict(torch.cat([image, adversarial]))
    delta = adversarial - image
    peak = float(delta.abs().max())
    amplified = 0.5 + delta / (2 * peak) if peak > 0 else torch.full_like(delta, 0.5)
    return AttackOut(
        attack=name,
        params=attack.params(),
        original=_verdict_out("original", original),
        adversarial=_verdict_out("adversarial", attacked),
        adversarial_png=_png_base64(adversarial[0]),
        perturbation_png=_png_base64(amplified[0]),
        linf=peak,
        l2=float(delta.norm()),
    )


@router.post(
    "/attack",
    response_model=AttackOut,
    dependencies=[Depends(require_read)],
    responses=errors(400, 404, 409, 413, 415, 422),
)
async def attack_image(
    guards: GuardsDep,
    storage: StorageDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="One PNG, JPEG or DICOM image")],
    attack: Annotated[str, Form(description="Attack name, e.g. pgd")] = "pgd",
    eps: Annotated[
        Budget | None, Form(gt=0, le=1, description="L∞ budget: 8/255, 0.031, or 8 for 8/255")
    ] = None,
    detector_id: Annotated[str | None, Query()] = None,
) -> AttackOut:
    """Attack one image against the guard's classifier and show the guard's verdict on the
    original and the attacked image (the web app's "attack this image"). One image and the
    attack's default step counts keep this interactive (under a second for L∞ attacks on
    the built-in CNN); larger runs are ``build_adversarial_set`` jobs."""
    try:
        attack_class(attack)  # refused before the upload is read
    except AttackError as error:
        raise HTTPException(422, str(error)) from None
    payloads = await _read_files(settings, [file])
    served = await _served(guards, storage, settings, detector_id)
    image = await guards.compute.run(
        _decode, served, settings, payloads, DEFAULT_SLICE_AXIS, _Decoded()
    )
    if len(image) != 1:
        raise HTTPException(422, f"a volume of {len(image)} slices: attack one image (a slice)")
    guard = await guards.compute.run(guards.guard, served.id, served.path)
    try:
        return await guards.compute.run(_attack_one, guard, image, attack, eps)
    except AttackError as error:
        raise HTTPException(422, str(error)) from None
