"""Health: is the API up, can it reach the broker (Redis) and the database."""

from __future__ import annotations

from typing import Literal

import redis
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import SQLAlchemyError

from advguard import __version__
from advguard.api.deps import SettingsDep, StorageDep
from advguard.api.schemas import HealthOut

router = APIRouter(tags=["health"])


def _broker_status(url: str) -> str:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
    except redis.RedisError as error:
        return f"unreachable: {error}"
    return "ok"


@router.get("/health", response_model=HealthOut)
async def health(settings: SettingsDep, storage: StorageDep) -> HealthOut:
    """Always 200 while the API runs; ``status`` is ``degraded`` if a dependency is down."""
    broker = await run_in_threadpool(_broker_status, settings.broker_url)
    try:
        await run_in_threadpool(storage.db.ping)
        database = "ok"
    except SQLAlchemyError as error:
        database = f"unreachable: {type(error).__name__}"
    status: Literal["ok", "degraded"] = "ok" if broker == database == "ok" else "degraded"
    return HealthOut(status=status, api="ok", broker=broker, database=database, version=__version__)
