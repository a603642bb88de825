"""The query watch's flagged clients: who looks like a black-box attack in progress."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, HTTPException, Response

from advguard.api.deps import QueryWatchDep, SettingsDep, require_write
from advguard.api.schemas import FlaggedClientOut, QueryAttacksOut, errors

router = APIRouter(prefix="/query-attacks", tags=["query attacks"])


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


# Client addresses are an operator's business: these need the API key whenever one is set.
@router.get("", response_model=QueryAttacksOut, dependencies=[Depends(require_write)])
async def list_flagged(watch: QueryWatchDep, settings: SettingsDep) -> QueryAttacksOut:
    """Clients flagged within the window, most recently flagged first (empty when the
    watch is off)."""
    flagged = watch.flagged() if watch is not None else []
    return QueryAttacksOut(
        enabled=watch is not None,
        policy=settings.query_watch_policy,
        window=settings.query_watch_window_s,
        flag_at=settings.query_watch_flag_at,
        clients=[
            FlaggedClientOut(
                client=client.client,
                first_flagged=_time(client.first_flagged),
                last_flagged=_time(client.last_flagged),
                matches=client.matches,
                queries=client.queries,
            )
            for client in flagged
        ],
    )


@router.delete(
    "/{client}",
    status_code=204,
    dependencies=[Depends(require_write)],
    responses=errors(404, 409),
)
async def clear_client(client: str, watch: QueryWatchDep) -> Response:
    """Clear a client's flag and query history (a false alarm): it starts afresh."""
    if watch is None:
        raise HTTPException(409, "the query watch is off (ADVGUARD_QUERY_WATCH=false)")
    cleared = watch.forget(client)
    if not cleared:
        raise HTTPException(404, f"client {client!r} has no query history or flag")
    return Response(status_code=204)
