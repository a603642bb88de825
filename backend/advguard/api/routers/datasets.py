"""Datasets: the bundled set, and folder-per-class zips uploaded by users."""

from __future__ import annotations

import functools
import shutil
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy import select

from advguard.api.deps import (
    SettingsDep,
    StorageDep,
    not_found,
    require_read,
    require_write,
    save_upload,
)
from advguard.api.routers.naming import add_rename_route
from advguard.api.schemas import (
    DatasetDetailOut,
    DatasetOut,
    SkippedOut,
    ThumbnailOut,
    VolumeOut,
    errors,
)
from advguard.data import DatasetImportError, FolderDataset, load_dataset, save_png
from advguard.data.volumes import DEFAULT_SLICE_AXIS
from advguard.storage import BUNDLED_DATASET_ID, DatasetRecord, Storage, new_id

router = APIRouter(prefix="/datasets", tags=["datasets"])
THUMBNAILS_PER_CLASS = 4


def _out(record: DatasetRecord) -> DatasetOut:
    return DatasetOut(
        id=record.id,
        name=record.name,
        bundled=record.id == BUNDLED_DATASET_ID,
        class_names=record.class_names,
        counts=record.counts,
        image_size=record.image_size,
        channels=record.channels,
        created_at=record.created_at,
    )


def _describe(storage: Storage, record: DatasetRecord, folder: FolderDataset) -> None:
    """Fill in class counts and skipped files, and write a few thumbnails per class."""
    record.class_names = folder.class_names
    record.counts = {
        split: dataset.class_counts() for split, dataset in sorted(folder.splits.items())
    }
    record.skipped = [{"path": s.path, "reason": s.reason} for s in folder.skipped[:200]]
    record.volumes = [volume.to_dict() for volume in folder.volumes[:1000]]
    thumbnails = storage.folder("datasets", record.id) / "thumbnails"
    thumbnails.mkdir(parents=True, exist_ok=True)
    first = folder.splits.get("train") or next(iter(folder.splits.values()))
    for label in range(len(folder.class_names)):
        positions = (first.labels == label).nonzero().flatten()[:THUMBNAILS_PER_CLASS]
        for k, position in enumerate(positions.tolist()):
            save_png(first.images[position], str(thumbnails / f"{label:03d}-{k}.png"))


def _detail(storage: Storage, record: DatasetRecord) -> DatasetDetailOut:
    thumbnails = storage.folder("datasets", record.id) / "thumbnails"
    files = sorted(thumbnails.glob("*.png")) if thumbnails.exists() else []
    return DatasetDetailOut(
        **_out(record).model_dump(),
        thumbnails=[
            ThumbnailOut(
                class_name=record.class_names[int(path.name.split("-")[0])],
                url=f"/api/v1/datasets/{record.id}/thumbnails/{path.name}",
            )
            for path in files
        ],
        skipped=[SkippedOut(**item) for item in record.skipped],
        volumes=[VolumeOut(**item) for item in record.volumes],
    )


@router.get("", response_model=list[DatasetOut], dependencies=[Depends(require_read)])
def list_datasets(storage: StorageDep) -> list[DatasetOut]:
    """Every dataset, the bundled one first."""
    with storage.db.session() as session:
        records = session.scalars(select(DatasetRecord).order_by(DatasetRecord.created_at)).all()
    records = sorted(records, key=lambda r: r.id != BUNDLED_DATASET_ID)
    return [_out(record) for record in records]


@router.post(
    "",
    response_model=DatasetDetailOut,
    status_code=201,
    dependencies=[Depends(require_write)],
    responses=errors(400, 413, 422),
)
async def upload_dataset(
    storage: StorageDep,
    settings: SettingsDep,
    file: Annotated[
        UploadFile, File(description="A zip of <class>/<image> or <split>/<class>/<image>")
    ],
    name: Annotated[str | None, Form(max_length=200)] = None,
    slice_axis: Annotated[
        int, Form(ge=0, le=2, description="The axis NIfTI volumes are cut across")
    ] = DEFAULT_SLICE_AXIS,
) -> DatasetDetailOut:
    """Upload a folder-per-class zip of PNG, JPEG or DICOM images, or NIfTI volumes (one
    image per non-empty slice). Unreadable files are listed, not fatal."""
    dataset_id = new_id()
    folder = storage.folder("datasets", dataset_id)
    archive = folder / "dataset.zip"
    try:
        await save_upload(file, archive, settings.max_dataset_bytes, "dataset zip")
        try:
            loaded = await run_in_threadpool(
                functools.partial(
                    load_dataset,
                    archive,
                    image_size=settings.image_size,
                    settings=settings,
                    slice_axis=slice_axis,
                )
            )
        except DatasetImportError as error:
            raise HTTPException(
                422, str(error).replace(str(archive), repr(file.filename))
            ) from None
        record = DatasetRecord(
            id=dataset_id,
            name=name or (file.filename or "dataset").removesuffix(".zip"),
            source=str(archive),
            image_size=settings.image_size,
            slice_axis=slice_axis,
        )
        await run_in_threadpool(_describe, storage, record, loaded)
        with storage.db.session() as session:
            session.add(record)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return _detail(storage, record)


@router.get(
    "/{dataset_id}",
    response_model=DatasetDetailOut,
    dependencies=[Depends(require_read)],
    responses=errors(404),
)
def get_dataset(dataset_id: str, storage: StorageDep, settings: SettingsDep) -> DatasetDetailOut:
    """One dataset with its class counts and a few thumbnails per class."""
    with storage.db.session() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            raise not_found("dataset", dataset_id)
        if not record.counts:  # the bundled set is described the first time it is opened
            loaded = load_dataset(
                record.source,
                image_size=record.image_size,
                settings=settings,
                slice_axis=record.slice_axis,
            )
            _describe(storage, record, loaded)
    return _detail(storage, record)


@router.get(
    "/{dataset_id}/thumbnails/{name}",
    response_class=FileResponse,
    dependencies=[Depends(require_read)],
    responses=errors(404),
)
def get_thumbnail(dataset_id: str, name: str, storage: StorageDep) -> FileResponse:
    """One thumbnail PNG."""
    path = storage.resolve_inside(storage.folder("datasets", dataset_id) / "thumbnails", name)
    if path is None:
        raise HTTPException(404, f"dataset {dataset_id!r} has no thumbnail {name!r}")
    return FileResponse(path, media_type="image/png")


@router.delete(
    "/{dataset_id}",
    status_code=204,
    dependencies=[Depends(require_write)],
    responses=errors(404, 409),
)
def delete_dataset(dataset_id: str, storage: StorageDep) -> Response:
    """Delete an uploaded dataset and its files (the bundled set stays)."""
    if dataset_id == BUNDLED_DATASET_ID:
        raise HTTPException(409, "the bundled dataset cannot be deleted")
    with storage.db.session() as session:
        record = session.get(DatasetRecord, dataset_id)
        if record is None:
            raise not_found("dataset", dataset_id)
        session.delete(record)
    shutil.rmtree(storage.folder("datasets", dataset_id), ignore_errors=True)
    return Response(status_code=204)


add_rename_route(
    router, DatasetRecord, "dataset", DatasetOut, lambda _storage, record: _out(record)
)
