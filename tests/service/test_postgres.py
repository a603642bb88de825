"""The metadata store on a real PostgreSQL server (the default is SQLite): the same API
calls, the same records. Skipped where no PostgreSQL server binaries are installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import _free_port
from fastapi.testclient import TestClient

from advguard.api import create_app
from advguard.jobs import TrainClassifierParams
from advguard.storage import JobRecord, Storage

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture(scope="module")
def postgres_url():
    if not (POSTGRES_BIN / "initdb").exists() or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL 15 server binaries are not installed")
    if os.geteuid() != 0:
        pytest.skip("starting a throwaway PostgreSQL needs root (to run it as `postgres`)")
    # Outside pytest's root-only temporary tree, so that the `postgres` user can enter it.
    folder = Path(tempfile.mkdtemp(prefix="advguard-postgres-"))
    shutil.chown(folder, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_postgres,
            POSTGRES_BIN / "initdb",
            "-D",
            folder / "db",
            "-A",
            "trust",
            "-U",
            "advguard",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
    server = [*as_postgres, POSTGRES_BIN / "pg_ctl", "-D", folder / "db", "-w"]
    subprocess.run([*server, "-o", options, "-l", folder / "log", "start"], check=True)
    yield f"postgresql+psycopg://advguard@127.0.0.1:{port}/postgres"
    subprocess.run([*server, "stop", "-m", "fast"], check=True)
    shutil.rmtree(folder, ignore_errors=True)


def test_api_records_survive_a_restart_on_postgres(postgres_url, service_settings, tmp_path):
    settings = service_settings.model_copy(
        update={"data_dir": tmp_path, "database_url": postgres_url}
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/health").json()["database"] == "ok"
        dataset = client.get("/api/v1/datasets/bundled").json()
        assert sum(dataset["counts"]["test"].values()) > 0
    storage = Storage(tmp_path, postgres_url)
    with storage.db.session() as session:
        session.add(JobRecord(id="pg-job", type="train_classifier", params={"epochs": 3}))
    storage.set_progress("pg-job", 0, "training", 1, 3)
    storage.set_progress("pg-job", 1, "training", 2, 5)
    # A new API process on the same database sees everything the last one wrote.
    with TestClient(create_app(settings)) as client:
        job = client.get("/api/v1/jobs/pg-job").json()
        # Shown typed, the parameters the record leaves out at their defaults.
        assert job["params"] == TrainClassifierParams(epochs=3).model_dump(mode="json")
        assert (job["progress"]["done"], job["progress"]["total"]) == (3, 8)
        assert client.get("/api/v1/datasets/bundled").json()["counts"] == dataset["counts"]
