"""Faults with real processes: a worker killed mid-job, Redis going away, cancellation."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import Worker, wait_for_job

from advguard.jobs import mark_finished, mark_started
from advguard.storage import JobRecord, Storage

LONG_TRAINING = {"type": "train_classifier", "epochs": 8, "patience": 8}


@pytest.fixture(scope="module")
def storage(service_settings) -> Storage:
    return Storage.from_settings(service_settings)


def wait_until_working(client, storage: Storage, job_id: str) -> int:
    """Wait until the job has made progress; return the pid of the process running it."""
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] == "running" and job["progress"]["done"] >= 1:
            with storage.db.session() as session:
                record = session.get(JobRecord, job_id)
                return int(record.worker.rsplit(" pid ", 1)[1])
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, f"job {job_id} made no progress: {job}"
        time.sleep(0.1)


def test_pool_process_killed_mid_job_is_rerun_to_success(client, worker, storage):
    job = client.post("/api/v1/jobs", json=LONG_TRAINING).json()
    victim = wait_until_working(client, storage, job["id"])
    assert victim != worker.process.pid  # the pool child, not the worker's main process
    os.kill(victim, signal.SIGKILL)
    finished = wait_for_job(client, job["id"])
    assert finished["state"] == "succeeded", finished
    assert finished["attempts"] == 2
    assert finished["result"]["epochs_run"] == 8


def test_whole_worker_killed_mid_job_is_redelivered_to_a_new_worker(client, worker, storage):
    worker.stop()
    doomed = Worker("doomed")
    doomed.start()
    try:
        job = client.post("/api/v1/jobs", json=LONG_TRAINING).json()
        child = wait_until_working(client, storage, job["id"])
        os.kill(child, signal.SIGKILL)
        os.kill(doomed.process.pid, signal.SIGKILL)  # no warm shutdown, no requeue by it
        doomed.process.wait()
    finally:
        doomed.stop()
        worker.start()
    # The message was never acknowledged: Redis hands it out again after the visibility
    # timeout (30 s here), and the new worker runs the job from the start.
    finished = wait_for_job(client, job["id"])
    assert finished["state"] == "succeeded", finished
    assert finished["attempts"] == 2


def test_redis_outage_gives_503_then_recovers(client, worker, redis_server):
    redis_server.stop()
    try:
        answer = client.post("/api/v1/jobs", json={"type": "train_classifier", "epochs": 1})
        assert answer.status_code == 503, answer.text
        assert "queue is unreachable" in answer.json()["detail"]
        health = client.get("/api/v1/health").json()
        assert health["status"] == "degraded" and health["broker"].startswith("unreachable")
        assert client.get("/api/v1/jobs", params={"state": "queued"}).json()["total"] == 0
    finally:
        redis_server.start()
    assert client.get("/api/v1/health").json()["status"] == "ok"
    answer = client.post("/api/v1/jobs", json={"type": "train_classifier", "epochs": 1})
    assert answer.status_code == 202, answer.text
    assert wait_for_job(client, answer.json()["id"])["state"] == "succeeded"


def test_cancel_stops_a_running_job(client, worker, storage):
    job = client.post("/api/v1/jobs", json={**LONG_TRAINING, "epochs": 200}).json()
    wait_until_working(client, storage, job["id"])
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    # The worker stops at its next progress step and takes the next job.
    follow = client.post("/api/v1/jobs", json={"type": "train_classifier", "epochs": 1}).json()
    assert wait_for_job(client, follow["id"])["state"] == "succeeded"
    final = client.get(f"/api/v1/jobs/{job['id']}").json()
    assert final["state"] == "cancelled" and final["progress"]["done"] < 200


def test_a_job_whose_worker_keeps_dying_ends_failed(tmp_path):
    storage = Storage(tmp_path, f"sqlite:///{tmp_path / 'jobs.db'}")
    with storage.db.session() as session:
        session.add(JobRecord(id="j1", type="train_classifier", params={}))
    for attempt in range(3):  # each delivery starts it; the process then dies silently
        assert mark_started(storage, "j1", f"w pid {attempt}", max_attempts=3)
    assert not mark_started(storage, "j1", "w pid 9", max_attempts=3)
    with storage.db.session() as session:
        record = session.get(JobRecord, "j1")
        assert record.state == "failed" and "stopped 3 times" in record.error
    mark_finished(storage, "j1", "succeeded", {"late": True}, None)  # a late duplicate
    with storage.db.session() as session:
        assert session.get(JobRecord, "j1").state == "failed"
