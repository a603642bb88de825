"""docker-compose.yml is a valid Compose file wiring Redis, the API, the workers and the web app.

Only validated (``docker-compose config``), never run: no images are pulled or built here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = {"redis", "api", "worker-attacks", "worker-training", "frontend"}
PYTHON_SERVICES = {"api", "worker-attacks", "worker-training"}
COMPOSE = shutil.which("docker-compose")

pytestmark = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose binary not installed (scripts/system-deps.sh installs it as root)",
)


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``docker-compose ARGS`` in the repository root on docker-compose.yml alone."""
    # COMPOSE_FILE / COMPOSE_PROJECT_NAME etc. from the caller's shell would change the answer.
    env = {key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")}
    return subprocess.run(
        [str(COMPOSE), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@cache
def resolved_config() -> dict[str, Any] | None:
    """The resolved configuration as a mapping, or ``None`` when it cannot be parsed here.

    Compose v2 prints JSON with ``--format json``; v1 (Debian's docker-compose 1.29) has no
    such option (it prints its usage and still exits 0), so it is parsed as YAML when PyYAML
    is installed.
    """
    if "--format" in compose("config", "--help").stdout:
        result = compose("config", "--format", "json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)
    try:
        import yaml
    except ImportError:
        return None
    result = compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as ``KEY=VALUE`` lines."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def test_compose_config_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_defines_all_services() -> None:
    config = resolved_config()
    if config is None:
        result = compose("config", "--services")
        assert result.returncode == 0, result.stderr
        services = set(result.stdout.split())
    else:
        services = set(config["services"])
    assert services >= SERVICES, f"missing services: {sorted(SERVICES - services)}"


def test_python_services_share_redis_broker_and_data_volume() -> None:
    config = resolved_config()
    if config is None:
        pytest.skip("neither `docker-compose config --format json` nor PyYAML is available")
    services = config["services"]
    volumes = set()
    for name in sorted(PYTHON_SERVICES):
        env = environment(services[name])
        broker = urlparse(env.get("ADVGUARD_BROKER_URL", ""))
        assert (broker.scheme, broker.hostname) == ("redis", "redis"), (name, env)
        assert env.get("ADVGUARD_DATA_DIR") == "/data", (name, env)
        mounts = services[name].get("volumes") or []
        # v1 prints "volume:/data:rw"; v2 prints {"type": "volume", "source": ..., "target": ...}.
        data = [
            mount.split(":")[0] if isinstance(mount, str) else mount.get("source")
            for mount in mounts
            if (mount.split(":")[1] if isinstance(mount, str) else mount.get("target")) == "/data"
        ]
        assert len(data) == 1, (name, mounts)
        volumes.add(data[0])
    assert len(volumes) == 1 and volumes <= set(config.get("volumes") or {}), volumes
