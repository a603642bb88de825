"""Renaming: every record (dataset, model, detector, job) has a name its user can change."""

# No ``from __future__ import annotations``: the route's parameter annotation names a path
# parameter made at run time, which FastAPI must see evaluated.
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from advguard.api.deps import NamedT, StorageDep, rename, require_write
from advguard.api.schemas import RenameIn, errors
from advguard.storage import Storage


def add_rename_route(
    router: APIRouter,
    kind: type[NamedT],
    label: str,
    response_model: Any,
    out: Callable[[Storage, NamedT], Any],
) -> None:
    """``PATCH /{id}`` on ``router`` with ``{"name": ...}``: rename the ``label`` record
    (its id and files stay) and answer it as ``out`` shows it."""

    key = f"{label}_id"  # the same path parameter as the router's other routes

    def rename_record(
        record_id: Annotated[str, Path(alias=key)], body: RenameIn, storage: StorageDep
    ) -> Any:
        return out(storage, rename(storage, kind, record_id, label, body.name))

    rename_record.__doc__ = f"Give the {label} another name (its id and files stay)."
    router.add_api_route(
        f"/{{{key}}}",
        rename_record,
        methods=["PATCH"],
        response_model=response_model,
        dependencies=[Depends(require_write)],
        responses=errors(404, 422),
        name=f"rename_{label}",
    )
