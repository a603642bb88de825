"""Import folder-per-class image datasets from a directory or a zip archive.

Accepted layouts (an optional single wrapping folder is ignored)::

    root/<class>/<image>              -> one split named "all"
    root/<split>/<class>/<image>      -> splits such as "train" and "test"

An image is a PNG, a JPEG or a DICOM file (``.dcm``, any transfer syntax pydicom decodes
here); a NIfTI volume (``.nii``, ``.nii.gz``) gives one image per non-empty slice
(:mod:`advguard.data.volumes`), named ``<file>#<axis>=<index>``. Scans of any size are
padded to square and resized; a dataset is all grey or all colour.
"""

from __future__ import annotations

import functools
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch

from advguard.data.dataset import ImageDataset
from advguard.data.images import (
    IMAGE_SUFFIXES,
    ImageDecodeError,
    decode_dicom,
    decode_upload,
    is_colour,
    is_dicom,
    to_channels,
)
from advguard.data.volumes import DEFAULT_SLICE_AXIS, VolumeSlices, decode_nifti, is_nifti

DICOM_SUFFIXES = (".dcm", ".dicom")
SCAN_SUFFIXES = (*IMAGE_SUFFIXES, *DICOM_SUFFIXES)
"""Files read as one image each (NIfTI volumes are told by :func:`is_nifti`)."""

SPLIT_NAMES = ("train", "val", "test")


class DatasetImportError(ValueError):
    """The source cannot be imported as a whole; the message says why."""


@dataclass
class SkippedFile:
    """A file left out of an import, with the reason."""

    path: str
    reason: str


@dataclass
class FolderDataset:
    """The splits found in a folder dataset plus the files that could not be used."""

    splits: dict[str, ImageDataset]
    class_names: list[str]
    skipped: list[SkippedFile] = field(default_factory=list)
    volumes: list[VolumeSlices] = field(default_factory=list)
    """The NIfTI volumes read: their slices and the intensity window each got."""


MAX_UNPACKED_BYTES = 4 * 2**30
"""Zip archives that would unpack to more than this are refused before reading."""


def _is_hidden(path: PurePosixPath) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in path.parts)


def _directory_entries(root: Path) -> Iterator[tuple[PurePosixPath, Callable[[], bytes]]]:
    for file in sorted(root.rglob("*")):
        if file.is_symlink():
            continue  # Links could point outside the dataset.
        if file.is_file():
            yield PurePosixPath(file.relative_to(root).as_posix()), file.read_bytes


def check_zip_member(info: zipfile.ZipInfo) -> PurePosixPath:
    """Return a zip member's path, refusing absolute paths, ``..`` parts and links."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DatasetImportError(f"archive entry {info.filename!r} has an absolute path")
    if ".." in path.parts:
        raise DatasetImportError(f"archive entry {info.filename!r} points outside the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DatasetImportError(f"archive entry {info.filename!r} is a symbolic link")
    return path


def _zip_entries(
    archive: zipfile.ZipFile, max_members: int
) -> Iterator[tuple[PurePosixPath, Callable[[], bytes]]]:
    members = archive.infolist()
    if len(members) > max_members:
        raise DatasetImportError(
            f"archive has {len(members)} entries, over the limit of {max_members}"
        )
    unpacked = sum(info.file_size for info in members)
    if unpacked > MAX_UNPACKED_BYTES:
        raise DatasetImportError(
            f"archive unpacks to {unpacked / 2**30:.1f} GiB, over the limit of "
            f"{MAX_UNPACKED_BYTES / 2**30:.0f} GiB (a zip bomb?)"
        )
    for info in members:
        path = check_zip_member(info)
        if not info.is_dir():
            yield path, functools.partial(archive.read, info)


def _strip_wrapper(paths: list[PurePosixPath]) -> int:
    """How many leading folders every path shares (a zip of ``dataset/`` wraps everything)."""
    depth = 0
    while paths and all(len(p.parts) > depth + 2 for p in paths):
        first = paths[0].parts[depth]
        if any(p.parts[depth] != first for p in paths):
            break
        depth += 1
    return depth


ZIP_MAGIC = b"PK\x03\x04"
"""How a zip archive's first member starts."""


def load_image_folder(
    source: str | Path,
    *,
    image_size: int = 128,
    channels: int = 1,
    max_pixels: int = 50_000_000,
    max_members: int = 200_000,
    slice_axis: int = DEFAULT_SLICE_AXIS,
) -> FolderDataset:
    """Load a folder-per-class dataset from a directory or a ``.zip`` file.

    Images are padded to square, resized to ``image_size`` and converted to ``channels``
    (1 or 3); volumes are cut into slices across ``slice_axis``. Files that cannot be
    decoded are listed in ``skipped`` with the reason; the import fails when nothing usable
    is found, and when colour and grey scans are mixed (naming the files of the rarer kind):
    sizes may differ, but grey turned colour or colour turned grey would differ by class.
    """
    source = Path(source)
    if not source.exists():
        raise DatasetImportError(f"{source} does not exist")
    if source.is_dir():
        entries = list(_directory_entries(source))
        return _build(entries, image_size, channels, max_pixels, str(source), slice_axis)
    if not zipfile.is_zipfile(source):
        with source.open("rb") as handle:
            starts_like_a_zip = handle.read(4) == ZIP_MAGIC
        if starts_like_a_zip:  # a zip whose end (its table of contents) is missing or damaged
            raise DatasetImportError(f"{source} is a corrupt zip archive (truncated or damaged)")
        raise DatasetImportError(
            f"{source} is not a zip archive: upload a .zip with one folder per class"
        )
    try:
        with zipfile.ZipFile(source) as archive:
            entries = list(_zip_entries(archive, max_members))
            return _build(entries, image_size, channels, max_pixels, str(source), slice_axis)
    except zipfile.BadZipFile as error:
        raise DatasetImportError(f"{source} is a damaged zip archive: {error}") from error


def _build(
    entries: list[tuple[PurePosixPath, Callable[[], bytes]]],
    image_size: int,
    channels: int,
    max_pixels: int,
    source_name: str,
    slice_axis: int = DEFAULT_SLICE_AXIS,
) -> FolderDataset:
    skipped: list[SkippedFile] = []
    volumes: list[VolumeSlices] = []
    visible = [(path, read) for path, read in entries if not _is_hidden(path)]
    depth = _strip_wrapper([path for path, _ in visible if _is_scan(path)])
    has_splits = any(
        len(path.parts) >= depth + 3 and path.parts[depth].lower() in SPLIT_NAMES
        for path, _ in visible
    )
    # split -> class -> list of (relative name, reader)
    found: dict[str, dict[str, list[tuple[str, Callable[[], bytes]]]]] = {}
    for path, read in visible:
        parts = path.parts[depth:]
        name = str(path)
        if not _is_scan(path):
            skipped.append(SkippedFile(name, "not a PNG, JPEG, DICOM or NIfTI file"))
            continue
        if has_splits and len(parts) == 3 and parts[0].lower() in SPLIT_NAMES:
            split, class_name = parts[0].lower(), parts[1]
        elif not has_splits and len(parts) == 2:
            split, class_name = "all", parts[0]
        else:
            skipped.append(SkippedFile(name, "not inside a <class>/ folder"))
            continue
        found.setdefault(split, {}).setdefault(class_name, []).append((name, read))

    class_names = sorted({c for classes in found.values() for c in classes})
    if not class_names:
        raise DatasetImportError(
            f"no images found in {source_name}: expected <class>/<image> or "
            "<split>/<class>/<image> with PNG or JPEG files"
        )
    splits: dict[str, ImageDataset] = {}
    colour: list[str] = []
    grey: list[str] = []
    for split, classes in sorted(found.items()):
        images, labels, files = [], [], []
        for class_name, members in sorted(classes.items()):
            for name, read in members:
                try:
                    if is_nifti(name):
                        slices, volume = decode_nifti(
                            read(),
                            name,
                            axis=slice_axis,
                            channels=channels,
                            size=image_size,
                            max_voxels=max_pixels,
                        )
                        volumes.append(volume)
                        names = [f"{name}#{slice_axis}={k}" for k in volume.slices]
                        grey.append(name)
                    else:
                        # Decoded in colour, so that colour is seen before it is converted.
                        scan = _decode_scan(read(), name, 3, image_size, max_pixels)
                        (colour if is_colour(scan) else grey).append(name)
                        slices = [to_channels(scan, channels)]
                        names = [name]
                except ImageDecodeError as error:
                    skipped.append(SkippedFile(name, str(error)))
                    continue
                images += slices
                labels += [class_names.index(class_name)] * len(slices)
                files += names
        if images:
            splits[split] = ImageDataset(
                images=torch.stack(images),
                labels=torch.tensor(labels, dtype=torch.long),
                class_names=class_names,
                files=files,
            )
    if not splits:
        raise DatasetImportError(f"none of the image files in {source_name} could be read")
    if colour and grey:
        raise DatasetImportError(_mixed_message(source_name, colour, grey))
    if len(class_names) < 2:
        raise DatasetImportError(
            f"{source_name} has one class ({class_names[0]}); need two or more"
        )
    return FolderDataset(splits=splits, class_names=class_names, skipped=skipped, volumes=volumes)


def _mixed_message(source_name: str, colour: list[str], grey: list[str]) -> str:
    """Why a dataset of colour and grey scans is refused, with the files of the rarer kind."""
    few, few_kind, many_kind = (
        (colour, "colour", "grey") if len(colour) <= len(grey) else (grey, "grey", "colour")
    )
    shown = ", ".join(few[:5]) + (f" and {len(few) - 5} more" if len(few) > 5 else "")
    return (
        f"{source_name} mixes colour and grey scans: {len(few)} {few_kind} ({shown}) among "
        f"{len(colour) + len(grey) - len(few)} {many_kind}. A model trained on such a mix can "
        "learn the colour instead of the scan; make them one kind before zipping"
    )


def _is_scan(path: PurePosixPath) -> bool:
    return path.suffix.lower() in SCAN_SUFFIXES or is_nifti(path.name)


def _decode_scan(data: bytes, name: str, channels: int, size: int, max_pixels: int) -> torch.Tensor:
    """One PNG, JPEG or DICOM file (a ``.dcm`` must be DICOM; others are told by content)."""
    if name.lower().endswith(DICOM_SUFFIXES):
        if not is_dicom(data):
            raise ImageDecodeError("named .dcm but not a DICOM Part 10 file")
        return decode_dicom(data, channels=channels, size=size, max_pixels=max_pixels)
    return decode_upload(data, channels=channels, size=size, max_pixels=max_pixels)
