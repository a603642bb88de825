"""Jobs: long work (training, attacks, evaluation) queued to the Celery workers."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from kombu.exceptions import KombuError
from redis.exceptions import RedisError
from sqlalchemy import func, select

from advguard.api.deps import (
    ComputeDep,
    StorageDep,
    not_found,
    require_read,
    require_write,
)
from advguard.api.routers.naming import add_rename_route
from advguard.api.schemas import JOB_OUT, JobListOut, JobOut, ProgressOut, errors
from advguard.jobs import JOB_KINDS, JobParams, JobType, default_job_name
from advguard.storage import (
    FINISHED_STATES,
    JobRecord,
    JobState,
    StageProgress,
    Storage,
    utc_now,
)

router = APIRouter(prefix="/jobs", tags=["jobs"])


ETA_AFTER = 0.02
"""The share of a job done before its time left is estimated (earlier ones are noise)."""


def progress_out(progress: StageProgress, record: JobRecord) -> ProgressOut:
    """Where a job stands, with its time left while it runs."""
    eta = None
    if record.state == "running" and record.started_at is not None and progress.overall > ETA_AFTER:
        started = record.started_at
        if started.tzinfo is None:  # SQLite hands back naive UTC times
            started = started.replace(tzinfo=UTC)
        elapsed = (utc_now() - started).total_seconds()
        eta = max(0.0, elapsed * (1 - progress.overall) / progress.overall)
    return ProgressOut(
        **asdict(progress), fraction=progress.fraction, overall=progress.overall, eta_s=eta
    )


def job_out(storage: Storage, record: JobRecord) -> Any:
    """The job as the API shows it (the model of its type in :data:`JobOut`)."""
    # The stage count is the job type's, also before its first progress report.
    stages = len(JOB_KINDS[record.type].stages) if record.type in JOB_KINDS else 1
    progress = replace(storage.job_progress(record.id), stage_count=stages)
    if record.state == "succeeded":
        finished = max(progress.total, 1)
        progress = replace(
            progress, done=finished, total=finished, stage_number=progress.stage_count
        )
    artifacts = (record.result or {}).get("artifacts", {})
    return JOB_OUT.validate_python(
        {
            "id": record.id,
            "name": record.name or f"{record.type.replace('_', ' ')} {record.id[:8]}",
            "type": record.type,
            "state": record.state,
            "params": record.params,
            "progress": progress_out(progress, record),
            "result": record.result,
            "error": record.error,
            "artifacts": {
                name: f"/api/v1/artifacts/jobs/{record.id}/{path}"
                for name, path in artifacts.items()
            },
            "attempts": record.attempts,
            "created_at": record.created_at,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
        }
    )


def validate_references(storage: Storage, params: Any) -> None:
    """Refuse (422) a job whose dataset, model, set or detector is missing or unusable,
    with the same checks (and messages) the worker applies when the job runs."""
    try:
        JOB_KINDS[params.type].check(storage, params)
    except ValueError as error:  # JobInputError, and bad attack names or budgets
        raise HTTPException(422, str(error)) from None


def _queue(storage: Storage, params: JobParams) -> Any:
    """Record the job and hand it to the queue (blocking: database and broker calls); the
    record is removed again when the queue cannot take it."""
    from advguard.worker.tasks import submit

    with storage.db.session() as session:
        record = JobRecord(
            type=params.type,
            name=default_job_name(storage, params),
            params=params.model_dump(mode="json"),
        )
        session.add(record)
    try:
        submit(record.id, record.type)
    except (KombuError, RedisError, OSError) as error:
        with storage.db.session() as session:
            session.delete(session.get(JobRecord, record.id))
        raise HTTPException(
            503, f"the job queue is unreachable ({type(error).__name__}); try again shortly"
        ) from None
    return job_out(storage, record)


@router.post(
    "",
    response_model=JobOut,
    status_code=202,
    dependencies=[Depends(require_write)],
    responses=errors(422, 503),
)
async def create_job(
    storage: StorageDep,
    compute: ComputeDep,
    params: Annotated[JobParams, Body(discriminator="type")],
) -> Any:
    """Queue a job; poll ``GET /jobs/{id}`` for its state and progress."""
    await compute.run(validate_references, storage, params)  # may load a guard
    return await run_in_threadpool(_queue, storage, params)


@router.get("", response_model=JobListOut, dependencies=[Depends(require_read)])
def list_jobs(
    storage: StorageDep,
    type: Annotated[JobType | None, Query()] = None,
    state: Annotated[JobState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Any:
    """Jobs, newest first, filtered by type and state."""
    query = select(JobRecord)
    if type is not None:
        query = query.where(JobRecord.type == type)
    if state is not None:
        query = query.where(JobRecord.state == state)
    with storage.db.session() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        records = session.scalars(
            query.order_by(JobRecord.created_at.desc()).limit(limit).offset(offset)
        ).all()
    return JobListOut(items=[job_out(storage, r) for r in records], total=total)


@router.get(
    "/{job_id}", response_model=JobOut, dependencies=[Depends(require_read)], responses=errors(404)
)
def get_job(job_id: str, storage: StorageDep) -> Any:
    """A job's state, progress (stage, done/total), timestamps, result and error."""
    with storage.db.session() as session:
        record = session.get(JobRecord, job_id)
    if record is None:
        raise not_found("job", job_id)
    return job_out(storage, record)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    dependencies=[Depends(require_write)],
    responses=errors(404, 409),
)
def cancel_job(job_id: str, storage: StorageDep) -> Any:
    """Cancel a queued or running job (a running one stops at its next progress step)."""
    with storage.db.session() as session:
        record = session.get(JobRecord, job_id)
        if record is None:
            raise not_found("job", job_id)
        if record.state in FINISHED_STATES:
            raise HTTPException(409, f"job {job_id} has already ended ({record.state})")
        record.state, record.finished_at = "cancelled", utc_now()
    return job_out(storage, record)


add_rename_route(router, JobRecord, "job", JobOut, job_out)
