"""Celery tasks: thin wrappers that run :mod:`advguard.jobs` bodies and keep the job
record (state, progress, result, readable error) up to date."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from celery import Task, chord
from celery.exceptions import SoftTimeLimitExceeded
from pydantic import TypeAdapter

from advguard.config import get_settings
from advguard.jobs import (
    JOB_KINDS,
    BuildSetParams,
    JobCancelled,
    JobContext,
    JobParams,
    build_set_chunk,
    checked_result,
    finish_set,
    is_running,
    mark_finished,
    mark_started,
    plan_set_job,
    readable_error,
)
from advguard.runtime import configure_threads
from advguard.storage import JobRecord, get_storage
from advguard.worker.app import celery_app

_PARAMS: TypeAdapter[Any] = TypeAdapter(JobParams)


def _params(job_id: str) -> Any:
    with get_storage().db.session() as session:
        record = session.get(JobRecord, job_id)
        assert record is not None, f"job {job_id} vanished"
        return _PARAMS.validate_python(record.params)


def _context(task: Task, job_id: str, job_type: str, slot: int = 0) -> JobContext:
    """A job context whose progress also goes to Celery's result backend."""

    def report(stage: str, done: int, total: int) -> None:
        task.update_state(state="PROGRESS", meta={"stage": stage, "done": done, "total": total})

    stages = JOB_KINDS[job_type].stages
    return JobContext(
        get_storage(), job_id, get_settings(), slot=slot, on_progress=report, stages=stages
    )


def _run(
    task: Task,
    job_id: str,
    job_type: str,
    body: Callable[[JobContext], dict[str, Any] | None],
) -> None:
    """Run ``body`` and record its outcome; failures end the job, they never hang it."""
    configure_threads(get_settings().num_threads)
    try:
        result = body(_context(task, job_id, job_type))
    except JobCancelled:
        return
    except SoftTimeLimitExceeded:
        limit = get_settings().job_soft_time_limit_s
        mark_finished(get_storage(), job_id, "failed", None, f"stopped: over the {limit} s limit")
    except Exception as error:  # every failure must reach the job record, whatever it is
        mark_finished(get_storage(), job_id, "failed", None, readable_error(error))
    else:
        if result is not None:
            mark_finished(get_storage(), job_id, "succeeded", result, None)


@celery_app.task(bind=True, name="advguard.run_job")
def run_job(self: Task, job_id: str) -> None:
    """Run a single-task job (training, detector, evaluation)."""
    if not mark_started(get_storage(), job_id, _worker_name(self), _max_attempts()):
        return
    params = _params(job_id)
    body = JOB_KINDS[params.type].body
    assert body is not None, f"{params.type} jobs are started by start_build"
    _run(
        self,
        job_id,
        params.type,
        lambda context: checked_result(params.type, body(context, params)),
    )


@celery_app.task(bind=True, name="advguard.start_build")
def start_build(self: Task, job_id: str) -> None:
    """Check an adversarial-set job and fan its chunks out to the ``attacks`` workers."""
    if not mark_started(get_storage(), job_id, _worker_name(self), _max_attempts()):
        return
    params: BuildSetParams = _params(job_id)

    def fan_out(context: JobContext) -> None:
        chunks = plan_set_job(context, params, get_settings().build_chunk_parts)
        chord(
            build_chunk.si(job_id, index, parts).set(queue="attacks")
            for index, parts in enumerate(chunks)
        )(finish_build.si(job_id, len(chunks)).set(queue="attacks"))

    _run(self, job_id, params.type, fan_out)


@celery_app.task(bind=True, name="advguard.build_chunk")
def build_chunk(self: Task, job_id: str, chunk: int, parts: list[int]) -> int:
    """Make one chunk of an adversarial set; a failure fails the whole job."""
    if not is_running(get_storage(), job_id):
        return 0  # cancelled, failed elsewhere, or a late duplicate of a finished job
    configure_threads(get_settings().num_threads)
    params: BuildSetParams = _params(job_id)
    try:
        return build_set_chunk(
            _context(self, job_id, params.type, slot=chunk + 1), params, chunk, parts
        )
    except JobCancelled:
        return 0
    except Exception as error:
        message = f"chunk {chunk}: {readable_error(error)}"
        mark_finished(get_storage(), job_id, "failed", None, message)
        raise  # so the chord does not join an incomplete set


@celery_app.task(bind=True, name="advguard.finish_build")
def finish_build(self: Task, job_id: str, chunks: int) -> None:
    """Join the chunks of an adversarial set once all have finished."""
    if not is_running(get_storage(), job_id):
        return
    params: BuildSetParams = _params(job_id)
    _run(
        self,
        job_id,
        params.type,
        lambda context: checked_result(params.type, finish_set(context, params, chunks)),
    )


def _worker_name(task: Task) -> str:
    """``celery@host pid N``: which process runs the job (the pid is that of the pool
    child doing the work, so an operator can tell which one to look at)."""
    return f"{task.request.hostname} pid {os.getpid()}"


def _max_attempts() -> int:
    return get_settings().job_max_attempts


def submit(job_id: str, job_type: str) -> None:
    """Queue a job's first task (raises kombu's OperationalError when Redis is down).

    The caller never waits on Celery's result (the job record carries the outcome), so the
    result is not subscribed to: that subscription would tie the API to the backend.
    """
    kind = JOB_KINDS[job_type]
    task = start_build if kind.body is None else run_job
    task.apply_async(args=[job_id], queue=kind.queue, retry=False, ignore_result=True)


__all__ = ["build_chunk", "finish_build", "run_job", "start_build", "submit"]
