"""NIfTI volumes as 2-D slices: what a folder-per-class dataset may hold beside images.

A volume (``.nii`` or ``.nii.gz``, read with nibabel, never a network) becomes one image per
non-empty slice along the chosen axis. Its values, whatever their type (16-bit and float
scanners' values included), are **windowed, not truncated**: clipped to the
:data:`WINDOW_PERCENTILES` of the volume's non-zero voxels (the background, usually zero,
would otherwise set the low end) and scaled to [0, 1], one window per volume, so the
slices of a volume keep their relative brightness. The window each volume got is returned
(and recorded with the dataset) so the same scans can be windowed alike elsewhere.
"""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from advguard.data.images import ImageDecodeError, resize_square

NIFTI_SUFFIXES = (".nii", ".nii.gz")
WINDOW_PERCENTILES = (0.5, 99.5)
"""The window: these percentiles of a volume's non-zero voxels map to 0 and 1."""
DEFAULT_SLICE_AXIS = 2
"""Slices are taken across this axis of the stored array: the third, axial for scans
stored in the usual RAS/LPS orientation."""


@dataclass(frozen=True)
class VolumeSlices:
    """What one volume gave: its slices and how they were made."""

    file: str
    shape: tuple[int, ...]
    axis: int
    slices: list[int]
    """Indices along ``axis`` of the slices kept (the others were empty)."""
    window: tuple[float, float]
    """The stored values mapped to 0 and 1."""

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "shape": list(self.shape), "window": list(self.window)}


def is_nifti(name: str) -> bool:
    """True for a ``.nii`` or ``.nii.gz`` file name."""
    return name.lower().endswith(NIFTI_SUFFIXES)


def is_nifti_data(data: bytes) -> bool:
    """True for the bytes of a NIfTI-1 or NIfTI-2 file, gzipped or not (by its magic)."""
    head = data[:1024]
    if head[:2] == b"\x1f\x8b":
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[:4096], 1024)
        except zlib.error:
            return False
    return head[344:348] in (b"n+1\x00", b"ni1\x00") or head[4:8] in (b"n+2\x00", b"ni2\x00")


def decode_nifti(
    data: bytes,
    name: str,
    *,
    axis: int = DEFAULT_SLICE_AXIS,
    channels: int = 1,
    size: int | None = None,
    max_voxels: int = 200_000_000,
) -> tuple[list[Tensor], VolumeSlices]:
    """The non-empty slices of a 3-D NIfTI volume as ``C×H×W`` images in [0, 1] (resized
    to ``size``), and how they were made. Raises :class:`ImageDecodeError` saying why for a
    file that is not a readable 3-D volume."""
    import nibabel
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    if not 0 <= axis <= 2:
        raise ValueError(f"the slice axis must be 0, 1 or 2, got {axis}")
    if data[:2] == b"\x1f\x8b":  # gzip
        data = _gunzip(data, limit=max_voxels * 8 + 1_000_000)
    # nibabel raises its own errors (HeaderDataError, ImageFileError) besides the usual
    unreadable = (ImageFileError, HeaderDataError, ValueError, OSError, EOFError)
    try:
        image = nibabel.Nifti1Image.from_bytes(data)
    except unreadable as error:
        try:
            image = nibabel.Nifti2Image.from_bytes(data)
        except unreadable:
            raise ImageDecodeError(f"not a readable NIfTI volume ({error})") from None
    shape = tuple(int(n) for n in image.shape)
    while len(shape) > 3 and shape[-1] == 1:  # a 4-D file holding one volume
        shape = shape[:-1]
    if len(shape) != 3:
        raise ImageDecodeError(
            f"a {len(shape)}-D volume ({'×'.join(map(str, image.shape))}); expected 3-D "
            "(one scan; send time series or multi-echo data one volume per file)"
        )
    if int(np.prod(shape)) > max_voxels:
        raise ImageDecodeError(f"volume of {'×'.join(map(str, shape))} voxels, over the limit")
    try:
        values = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
    except (ValueError, OSError, EOFError) as error:
        raise ImageDecodeError(f"NIfTI voxel data cannot be read ({error})") from None
    foreground = values[np.isfinite(values) & (values != 0)]
    if foreground.size == 0:
        raise ImageDecodeError("the volume is empty (every voxel is 0)")
    low, high = (float(v) for v in np.percentile(foreground, WINDOW_PERCENTILES))
    if high <= low:
        high = low + 1.0
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    slices, kept = [], []
    for index in range(shape[axis]):
        plane = np.take(scaled, index, axis=axis)
        if float(plane.max()) <= float(plane.min()):  # empty (flat) slice
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None]
        tensor = tensor.expand(channels, -1, -1).contiguous()
        slices.append(resize_square(tensor, size) if size is not None else tensor)
        kept.append(index)
    if not slices:
        raise ImageDecodeError("every slice of the volume is empty")
    return slices, VolumeSlices(name, shape, axis, kept, (low, high))


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress, refusing to unpack more than ``limit`` bytes (a gzip bomb)."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        try:
            unpacked = stream.read(limit + 1)
        except (OSError, EOFError) as error:
            raise ImageDecodeError(f"corrupt gzip data ({error})") from None
    if len(unpacked) > limit:
        raise ImageDecodeError("the volume unpacks to more than the size limit")
    return unpacked


__all__ = [
    "DEFAULT_SLICE_AXIS",
    "NIFTI_SUFFIXES",
    "WINDOW_PERCENTILES",
    "VolumeSlices",
    "decode_nifti",
    "is_nifti",
]
