"""Detectors: trained by ``train_detector`` jobs, reported on by ``evaluate`` jobs."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from advguard.api.deps import StorageDep, not_found, require_read, require_write
from advguard.api.routers.naming import add_rename_route
from advguard.api.schemas import DetectorDetailOut, DetectorOut, errors
from advguard.storage import DetectorRecord, JobRecord

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
