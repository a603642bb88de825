"""Shared pieces of the routers: errors, access control, size-limited uploads."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, TypeVar

from fastapi import Depends, Header, HTTPException, Request, UploadFile

from advguard.api.predictor import ComputeThreads, GuardPool
from advguard.api.query_watch import QueryWatch, client_identity
from advguard.config import Settings
from advguard.storage import DatasetRecord, DetectorRecord, JobRecord, ModelRecord, Storage

CHUNK_BYTES = 1024 * 1024


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_app_storage(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


def get_guards(request: Request) -> GuardPool:
    return request.app.state.guards  # type: ignore[no-any-return]


def get_compute(request: Request) -> ComputeThreads:
    """Where torch work runs in the API process (see :class:`ComputeThreads`)."""
    return get_guards(request).compute


def get_query_watch(request: Request) -> QueryWatch | None:
    """The query watch, or ``None`` when ``ADVGUARD_QUERY_WATCH`` is off."""
    return request.app.state.query_watch  # type: ignore[no-any-return]


def get_query_client(request: Request, x_api_key: Annotated[str | None, Header()] = None) -> str:
    """Who sends this query, for the query watch: the API key when it is the valid one
    (any other value would let a client be someone new at every request), else the
    address."""
    valid = _valid_key(get_app_settings(request), x_api_key)
    address = request.client.host if request.client is not None else None
    return client_identity(x_api_key if valid else None, address)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
QueryWatchDep = Annotated[QueryWatch | None, Depends(get_query_watch)]
QueryClientDep = Annotated[str, Depends(get_query_client)]
StorageDep = Annotated[Storage, Depends(get_app_storage)]
GuardsDep = Annotated[GuardPool, Depends(get_guards)]
ComputeDep = Annotated[ComputeThreads, Depends(get_compute)]


def _valid_key(settings: Settings, key: str | None) -> bool:
    """Whether ``key`` is the configured API key (false when none is configured)."""
    return (
        bool(settings.api_key)
        and key is not None
        and hmac.compare_digest(key.encode(), settings.api_key.encode())
    )


def _check_key(settings: Settings, key: str | None) -> None:
    if settings.api_key and not _valid_key(settings, key):
        raise HTTPException(401, "missing or wrong API key (send it in the X-API-Key header)")


def require_write(settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Mutating endpoints need the API key whenever ``ADVGUARD_API_KEY`` is set."""
    _check_key(settings, x_api_key)


def require_read(settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None) -> None:
    """Reads and predict are open unless ``ADVGUARD_PROTECT_READS`` is true."""
    if settings.protect_reads:
        _check_key(settings, x_api_key)


def not_found(kind: str, record_id: str) -> HTTPException:
    return HTTPException(404, f"{kind} {record_id!r} does not exist")


NamedT = TypeVar("NamedT", DatasetRecord, ModelRecord, DetectorRecord, JobRecord)


def rename(storage: Storage, kind: type[NamedT], record_id: str, label: str, name: str) -> NamedT:
    """Give a record the name the user chose (404 when there is no such record)."""
    with storage.db.session() as session:
        record = session.get(kind, record_id)
        if record is None:
            raise not_found(label, record_id)
        record.name = name
        return record


async def save_upload(upload: UploadFile, destination: Path, limit: int, what: str) -> int:
    """Stream an upload to ``destination``, refusing it (413) past ``limit`` bytes and
    (400) when it is empty; nothing is left behind on refusal."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(destination, "wb") as handle:
            while chunk := await upload.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, f"{what} is larger than the limit of {limit / 2**20:.0f} MB"
                    )
                handle.write(chunk)
        if size == 0:
            raise HTTPException(400, f"{what} {upload.filename!r} is empty (0 bytes)")
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return size


async def read_upload(upload: UploadFile, limit: int, what: str) -> bytes:
    """An upload's bytes, refusing it (413) past ``limit`` and (400) when empty."""
    parts, size = [], 0
    while chunk := await upload.read(CHUNK_BYTES):
        size += len(chunk)
        if size > limit:
            raise HTTPException(
                413,
                f"{what} {upload.filename!r} is larger than the limit of {limit / 2**20:.0f} MB",
            )
        parts.append(chunk)
    if size == 0:
        raise HTTPException(400, f"{what} {upload.filename!r} is empty (0 bytes)")
    return b"".join(parts)
