"""Settings read from environment variables (prefix ``ADVGUARD_``) with safe local defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

# backend/advguard/config.py -> the repository root is two folders above the package.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``ADVGUARD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ADVGUARD_")

    data_dir: Path = Path("advguard-data")
    """Where jobs keep models, datasets and reports."""

    shared_data_dir: Path = REPOSITORY_ROOT.parent / "shared" / "data"
    """Reference datasets that live outside the repository (real MRI for tests and benches)."""

    image_size: int = 128
    """Side length images are resized to when a dataset is imported."""

    max_image_pixels: int = 50_000_000
    """Decoded images larger than this are refused (decompression-bomb guard)."""

    max_archive_members: int = 200_000
    """Zip archives with more entries than this are refused."""

    num_threads: int = 0
    """Torch intra-op threads; 0 means one per available core."""

    batch_memory_mb: int = 1024
    """Activations one batch may keep for its backward pass; batches of a large network
    (a DenseNet at 224 px) are cut to fit (``advguard.models.memory``)."""

    # --- service -------------------------------------------------------------------------
    frontend_dir: Path = REPOSITORY_ROOT / "frontend" / "dist"
    """The built web app, served by the API at ``/`` when the folder exists."""

    database_url: str = ""
    """SQLAlchemy URL of the metadata database; empty means ``sqlite:///<data_dir>/advguard.db``
    (``postgresql+psycopg://…`` for PostgreSQL)."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    """Celery broker and result backend (Redis)."""

    visibility_timeout_s: int = 4 * 3600
    """Seconds before Redis re-delivers a job whose worker vanished without a word. Longer
    than any job may run (a shorter one would start a second copy of a long job)."""

    job_soft_time_limit_s: int = 3 * 3600
    """A job still running after this long is stopped and marked failed."""

    job_max_attempts: int = 3
    """A job whose worker process dies this many times is marked failed, not re-run."""

    build_chunk_parts: int = 8
    """An adversarial-set job is split into chunks of this many parts (a part is one attack
    setting or control on one split), spread over the ``attacks`` workers."""

    api_key: str = ""
    """When set, every mutating endpoint needs it in the ``X-API-Key`` header."""

    protect_reads: bool = False
    """With an API key set, also require it for reads and predict (default: open)."""

    max_image_bytes: int = 20 * 1024 * 1024
    """Largest image accepted by predict."""

    max_dataset_bytes: int = 500 * 1024 * 1024
    """Largest dataset zip accepted by upload."""

    max_model_bytes: int = 200 * 1024 * 1024
    """Largest model file accepted by upload."""

    max_predict_images: int = 256
    """Most images in one predict request (a NIfTI volume counts each non-empty slice: a
    brain volume has ~150)."""

    predict_batching: bool = True
    """Gather concurrent predict requests into one batch (micro-batching)."""

    predict_max_batch: int = 32
    """Micro-batching: run as soon as this many images are waiting…"""

    predict_max_wait_ms: float = 0.0
    """…or this long after the first one arrived. 0 (the default) takes whatever is waiting
    when the previous batch ends: no added latency for a lone client, and under load the
    requests that queued during one batch form the next."""

    predict_runners: int = 1
    """Threads for the API's torch work (predict, decoding, guard loading), and batches in
    flight at once. One suits a small machine: each thread brings its own torch threads,
    and more threads than cores make every op slower (see ``ComputeThreads``)."""

    # --- query watch: black-box attacks noticed from each client's stream of queries ------
    query_watch: bool = True
    """Fingerprint every predict image and compare it with the client's recent queries
    (``advguard.api.query_watch``): matched in each API process's memory, shared between
    processes through a log in Redis."""

    query_watch_url: str = ""
    """Redis for the query watch; empty means the broker's."""

    query_watch_window_s: int = 1800
    """How long a client's queries are remembered, and how long a flag lasts."""

    query_watch_policy: Literal["flag", "refuse"] = "flag"
    """Past the threshold: ``flag`` marks the verdicts (``query_attack.suspected``);
    ``refuse`` answers 429 with the reason until the window has passed."""

    query_watch_flag_at: int = 8
    """A query that nearly duplicates this many of the client's earlier ones flags it. A
    clinic's re-exports, crops and contrast changes of one scan reached 2 on
    brain-mri-4class; Square and HopSkipJump reach 8 within 13–29 queries
    (``bench/query_watch.py``)."""

    query_watch_match_hashes: int = 20
    """Two queries nearly duplicate each other when they share this many of their 50
    fingerprint hashes."""

    query_watch_max_hashes: int = 4000
    """Most fields kept per client and half window (about 80 distinct images); past it, a
    client's new images are still matched but no longer recorded until the next half."""

    query_watch_max_clients: int = 1000
    """Most clients tracked at once; past it the least recently seen is forgotten."""

    query_watch_max_log: int = 20_000
    """Most queries kept in the shared log in Redis (~0.5 kB each); a process that starts
    replays the log's last window, so past this many queries the oldest are not replayed."""

    @property
    def resolved_query_watch_url(self) -> str:
        """The query watch's Redis: its own URL, else the broker's."""
        return self.query_watch_url or self.broker_url

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the SQLite default inside the data directory."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'advguard.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
