"""Datasets: the bundled synthetic MRI set, folder/zip import, and the shared real MRI set."""

from __future__ import annotations

from pathlib import Path

from advguard.config import Settings, get_settings
from advguard.data.dataset import ImageDataset, split_holdout
from advguard.data.folder import (
    DatasetImportError,
    FolderDataset,
    SkippedFile,
    check_zip_member,
    load_image_folder,
)
from advguard.data.images import (
    ImageDecodeError,
    decode_dicom,
    decode_image,
    decode_upload,
    save_png,
    to_uint8,
)
from advguard.data.volumes import DEFAULT_SLICE_AXIS, VolumeSlices

BUNDLED = "bundled"
REAL_MRI = "brain-mri-4class"


def real_mri_path(settings: Settings | None = None) -> Path:
    """Where the real brain-MRI reference set is expected (``ADVGUARD_SHARED_DATA_DIR`` of
    ``settings``; default: the environment's)."""
    return (settings or get_settings()).shared_data_dir / REAL_MRI


def load_dataset(
    source: str | Path,
    *,
    image_size: int | None = None,
    channels: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
    settings: Settings | None = None,
    slice_axis: int = DEFAULT_SLICE_AXIS,
) -> FolderDataset:
    """Load ``bundled``, ``brain-mri-4class`` or a folder/zip path, always with train and test.

    A dataset without its own ``train``/``test`` folders gets a stratified hold-out of
    ``test_fraction`` as its test split. ``settings`` (the caller's: the API passes its
    app's; default: the environment's) give the default image size, the shared data
    folder and the limits on imported files.
    """
    settings = settings or get_settings()
    size = image_size or settings.image_size
    if str(source) == BUNDLED:
        from advguard.data.synthetic import BUNDLED_CLASS_NAMES, make_bundled_dataset

        splits = make_bundled_dataset(image_size=size, seed=seed)
        if channels != 1:  # grey scans for an RGB model: the grey value in every channel
            splits = {name: split.with_channels(channels) for name, split in splits.items()}
        return FolderDataset(splits=splits, class_names=list(BUNDLED_CLASS_NAMES))
    path = real_mri_path(settings) if str(source) == REAL_MRI else Path(source)
    if str(source) == REAL_MRI and not path.exists():
        raise DatasetImportError(
            f"the real MRI set is not at {path}; set ADVGUARD_SHARED_DATA_DIR to its parent folder"
        )
    folder = load_image_folder(
        path,
        image_size=size,
        channels=channels,
        max_pixels=settings.max_image_pixels,
        max_members=settings.max_archive_members,
        slice_axis=slice_axis,
    )
    if "train" not in folder.splits or "test" not in folder.splits:
        pooled = (
            folder.splits.get("all")
            or folder.splits.get("train")
            or next(iter(folder.splits.values()))
        )
        train, test = split_holdout(pooled, test_fraction, seed=seed)
        folder.splits = {"train": train, "test": test}
    return folder


__all__ = [
    "BUNDLED",
    "REAL_MRI",
    "DatasetImportError",
    "FolderDataset",
    "ImageDataset",
    "ImageDecodeError",
    "SkippedFile",
    "VolumeSlices",
    "check_zip_member",
    "decode_dicom",
    "decode_image",
    "decode_upload",
    "load_dataset",
    "load_image_folder",
    "real_mri_path",
    "save_png",
    "split_holdout",
    "to_uint8",
]
