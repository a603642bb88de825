"""Detectors: trained by ``train_detector`` jobs, reported on by ``evaluate`` jobs."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from sqlalchemy import select

from advguard.api.deps import StorageDep, not_found, require_read, require_write
from advguard.api.routers.naming import add_rename_route
from advguard.api.schemas import DetectorDetailOut, DetectorOut, errors
from advguard.detection import DetectorLoadError
from advguard.guard import Guard
from advguard.models import ModelLoadError
from advguard.portable import export_guard
from advguard.storage import DetectorRecord, JobRecord

EXPORT_FILE = "guard-export.pt"
"""The exported guard, made on the first request and kept beside the guard."""

router = APIRouter(prefix="/detectors", tags=["detectors"])


def _out(record: DetectorRecord) -> DetectorOut:
    return DetectorOut.model_validate(record, from_attributes=True)


@router.get("", response_model=list[DetectorOut], dependencies=[Depends(require_read)])
def list_detectors(storage: StorageDep) -> list[DetectorOut]:
    """Every detector, newest first."""
    with storage.db.session() as session:
        records = session.scalars(select(DetectorRecord).order_by(DetectorRecord.created_at.desc()))
        return [_out(record) for record in records]


@router.get(
    "/{detector_id}",
    response_model=DetectorDetailOut,
    dependencies=[Depends(require_read)],
    responses=errors(404),
)
def get_detector(detector_id: str, storage: StorageDep) -> BaseModel:
    """One detector with its latest report (AUROC per attack and ε, confusion, baselines)."""
    with storage.db.session() as session:
        record = session.get(DetectorRecord, detector_id)
        if record is None:
            raise not_found("detector", detector_id)
        report_job = session.get(JobRecord, record.report_job_id) if record.report_job_id else None
    result = (report_job.result or {}) if report_job is not None else {}
    return DetectorDetailOut.model_validate(
        {
            **_out(record).model_dump(),
            "report": result.get("report"),
            "report_artifacts": {
                name: f"/api/v1/artifacts/jobs/{record.report_job_id}/{path}"
                for name, path in result.get("artifacts", {}).items()
            },
        }
    )


@router.get(
    "/{detector_id}/export",
    response_class=FileResponse,
    dependencies=[Depends(require_read)],
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "The guard as one TorchScript file (see `advguard.portable`).",
        },
        **errors(404, 409),
    },
)
def export_detector(detector_id: str, storage: StorageDep) -> FileResponse:
    """The detector and its classifier as one TorchScript file, to run without advguard:
    ``torch.jit.load(path)(images)`` gives the class probabilities, the adversarial score,
    the verdict at the saved threshold and the attack probabilities."""
    with storage.db.session() as session:
        record = session.get(DetectorRecord, detector_id)
        if record is None:
            raise not_found("detector", detector_id)
        folder = Path(record.path)
    exported = folder / EXPORT_FILE
    if not exported.is_file():
        try:
            guard = Guard.load(folder, serving=True)
        except (ModelLoadError, DetectorLoadError) as error:
            message = f"detector {detector_id!r} cannot be exported: {error}"
            raise HTTPException(409, message) from None
        # written aside, then renamed: a concurrent request never serves half a file
        partial = exported.with_name(f".{EXPORT_FILE}.{os.getpid()}.{id(guard)}")
        os.replace(export_guard(guard, partial), exported)
    return FileResponse(
        exported,
        media_type="application/octet-stream",
        filename=f"advguard-guard-{detector_id}.pt",
    )


@router.delete(
    "/{detector_id}", status_code=204, dependencies=[Depends(require_write)], responses=errors(404)
)
def delete_detector(detector_id: str, storage: StorageDep, request: Request) -> Response:
    """Delete a detector and its saved guard."""
    with storage.db.session() as session:
        record = session.get(DetectorRecord, detector_id)
        if record is None:
            raise not_found("detector", detector_id)
        session.delete(record)
    request.app.state.guards.forget(detector_id)
    shutil.rmtree(storage.folder("detectors", detector_id), ignore_errors=True)
    return Response(status_code=204)


add_rename_route(
    router, DetectorRecord, "detector", DetectorOut, lambda _storage, record: _out(record)
)
