"""Schemathesis over the OpenAPI document: generated requests never get a server error.

The app here has its own empty data directory, so jobs it queues are unknown to the test
worker (which skips them) and random deletes cannot touch the other tests' records.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from conftest import SERVICE_ENV
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from advguard.api import create_app
from advguard.config import Settings

_DATA_DIR = Path(tempfile.mkdtemp(prefix="advguard-schema-"))
atexit.register(shutil.rmtree, _DATA_DIR, ignore_errors=True)
_SETTINGS = Settings(
    **{key.removeprefix("ADVGUARD_").lower(): v for key, v in SERVICE_ENV.items()},
).model_copy(update={"data_dir": _DATA_DIR})
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_SETTINGS))


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case, redis_server):
    case.call_and_validate(checks=[not_a_server_error])
