"""Predict: synchronous detect-then-classify for uploaded images (PNG, JPEG, DICOM)."""

from __future__ import annotations

from typing import Annotated

import torch
from fastapi import APIRouter, Depends, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from advguard.api.deps import SettingsDep, StorageDep, read_upload, require_read
from advguard.api.schemas import PredictOut, VerdictOut
from advguard.data import ImageDecodeError, decode_upload
from advguard.storage import DetectorRecord, ModelRecord, Storage

router = APIRouter(tags=["predict"])


def _detector(storage: Storage, detector_id: str | None) -> DetectorRecord:
    with storage.db.session() as session:
        if detector_id is not None:
            record = session.get(DetectorRecord, detector_id)
            if record is None:
                raise HTTPException(404, f"detector {detector_id!r} does not exist")
            return record
        record = session.scalars(
            select(DetectorRecord).order_by(DetectorRecord.created_at.desc()).limit(1)
        ).first()
    if record is None:
        raise HTTPException(
            409, "no detector yet: train one (a train_detector job) before calling predict"
        )
    return record


@router.post(
    "/predict",
    response_model=PredictOut,
    dependencies=[Depends(require_read)],
    responses={400: {}, 404: {}, 409: {}, 413: {}, 415: {}},
)
async def predict(
    request: Request,
    storage: StorageDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="PNG, JPEG or DICOM images")],
    detector_id: Annotated[
        str | None, Query(description="Detector to use; the newest one when omitted")
    ] = None,
) -> PredictOut:
    """Detect, then classify: a clean image gets the classifier's class and probabilities;
    an adversarial one is rejected (``label`` null) with the attack named."""
    if len(files) > settings.max_predict_images:
        raise HTTPException(
            413, f"{len(files)} images in one request; the limit is {settings.max_predict_images}"
        )
    record = await run_in_threadpool(_detector, storage, detector_id)
    with storage.db.session() as session:
        model = session.get(ModelRecord, record.model_id)
    size = model.image_size if model is not None else settings.image_size
    channels = model.channels if model is not None else 1
    images = []
    for upload in files:
        data = await read_upload(upload, settings.max_image_bytes, "image")
        try:
            images.append(
                decode_upload(
                    data, channels=channels, size=size, max_pixels=settings.max_image_pixels
                )
            )
        except ImageDecodeError as error:
            raise HTTPException(415, f"{upload.filename!r}: {error}") from None
    verdicts = await request.app.state.guards.predict(record.id, record.path, torch.stack(images))
    return PredictOut(
        detector_id=record.id,
        threshold=record.threshold,
        verdicts=[
            VerdictOut(file=upload.filename or f"image {k}", **verdict.to_dict())
            for k, (upload, verdict) in enumerate(zip(files, verdicts, strict=True))
        ],
    )
