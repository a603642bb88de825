"""The FastAPI application: routers under ``/api/v1``, JSON errors, guards kept loaded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from advguard import __version__
from advguard.api.predictor import ComputeThreads, GuardPool
from advguard.api.query_watch import QueryWatch
from advguard.api.routers import (
    artifacts,
    attacks,
    datasets,
    detectors,
    health,
    jobs,
    models,
    predict,
    query_attacks,
)
from advguard.config import Settings, get_settings
from advguard.runtime import configure_threads
from advguard.storage import Storage

API_PREFIX = "/api/v1"
logger = logging.getLogger("advguard.api")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_threads(settings.num_threads)
        if app.state.query_watch is not None:
            app.state.query_watch.start()
        yield
        app.state.guards.close()
        if app.state.query_watch is not None:
            app.state.query_watch.close()

    app = FastAPI(
        title="advguard",
        version=__version__,
        summary="Attack, measure, defend and guard image classifiers.",
        description=(
            "Upload datasets and classifiers, run attack, training and evaluation jobs on "
            "the workers, and call `predict` for detect-then-classify. Errors are JSON "
            '`{"detail": …}`. When `ADVGUARD_API_KEY` is set, mutating endpoints need it '
            "in the `X-API-Key` header (reads and predict too if `ADVGUARD_PROTECT_READS`)."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.storage = Storage.from_settings(settings)
    app.state.storage.ensure_bundled_dataset(settings.image_size)
    app.state.guards = GuardPool(
        ComputeThreads(settings.predict_runners),
        settings.predict_batching,
        settings.predict_max_batch,
        settings.predict_max_wait_ms,
    )
    app.state.query_watch = (
        QueryWatch(
            settings.resolved_query_watch_url,
            window_s=settings.query_watch_window_s,
            policy=settings.query_watch_policy,
            flag_at=settings.query_watch_flag_at,
            match_hashes=settings.query_watch_match_hashes,
            max_hashes=settings.query_watch_max_hashes,
            max_clients=settings.query_watch_max_clients,
            max_log=settings.query_watch_max_log,
        )
        if settings.query_watch
        else None
    )
    for module in (
        datasets,
        models,
        jobs,
        detectors,
        predict,
        query_attacks,
        attacks,
        artifacts,
        health,
    ):
        app.include_router(module.router, prefix=API_PREFIX)

    if (settings.frontend_dir / "index.html").is_file():
        # The web app (a single page with hash routes), so one address serves everything.
        app.mount("/", StaticFiles(directory=settings.frontend_dir, html=True), name="web")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"internal error ({type(error).__name__}); see the server log"},
            status_code=500,
        )

    return app
