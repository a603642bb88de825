"""Artifacts: files that jobs wrote (reports, plots, the adversarial set and its zip)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from advguard.api.deps import StorageDep, require_read
from advguard.api.schemas import errors
from advguard.storage import JobRecord

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.get(
    "/jobs/{job_id}/{path:path}",
    response_class=FileResponse,
    dependencies=[Depends(require_read)],
    responses=errors(404),
)
def download_job_artifact(job_id: str, path: str, storage: StorageDep) -> FileResponse:
    """A file a job wrote, by its path inside the job's folder (see the job's ``artifacts``)."""
    with storage.db.session() as session:
        if session.get(JobRecord, job_id) is None:
            raise HTTPException(404, f"job {job_id!r} does not exist")
    found = storage.resolve_inside(storage.folder("jobs", job_id), path)
    if found is None:
        raise HTTPException(404, f"job {job_id} has no artifact {path!r}")
    return FileResponse(found, filename=found.name)
