"""Datasets of DICOM files and NIfTI volumes: volumes become their non-empty slices, 16-bit
values are windowed (never wrapped or truncated), and bad files are listed and skipped."""

from __future__ import annotations

import gzip
import io
import zipfile

import nibabel
import numpy as np
import pytest
import torch
from test_dicom import make_dicom

from advguard.data import load_image_folder
from advguard.data.images import ImageDecodeError
from advguard.data.volumes import decode_nifti


def nifti(volume: np.ndarray, compress: bool = True) -> bytes:
    """A NIfTI-1 file of ``volume`` (identity affine), gzipped like ``.nii.gz``."""
    data = nibabel.Nifti1Image(volume, np.eye(4)).to_bytes()
    return gzip.compress(data) if compress else data


def brain_like(shape: tuple[int, int, int], seed: int, peak: float = 4000.0) -> np.ndarray:
    """A 16-bit volume: a bright ellipsoid with texture in a zero background, the first and
    last two slices along the last axis empty."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    inside = sum(a**2 for a in axes) < 0.8
    volume = np.where(inside, peak * (0.5 + 0.5 * rng.random(shape)), 0).astype(np.uint16)
    volume[..., :2] = 0
    volume[..., -2:] = 0
    return volume


def dataset_zip(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_a_volume_gives_its_non_empty_slices_windowed_not_truncated():
    volume = brain_like((24, 20, 12), seed=0)
    slices, info = decode_nifti(nifti(volume), "a.nii.gz", axis=2, size=16)
    assert info.slices == list(range(2, 10)) and len(slices) == 8
    assert info.shape == (24, 20, 12) and info.axis == 2
    low, high = info.window
    assert 0 < low < high <= 4000  # percentiles of the non-zero voxels, in stored units
    stacked = torch.stack(slices)
    assert stacked.shape == (8, 1, 16, 16)
    assert float(stacked.min()) == 0.0 and float(stacked.max()) <= 1.0
    # Windowed, not truncated to 8 bits: brighter voxels stay brighter across the range.
    middle, _ = decode_nifti(nifti(volume, compress=False), "a.nii", axis=2)
    assert float(torch.stack(middle).max()) == 1.0  # the window's top, clipped
    plane = middle[3][0].numpy()
    stored = volume[:, :, 5].astype(float)
    bright, dim = stored > 3500, (stored > 2100) & (stored < 2500)
    assert plane[bright].mean() > plane[dim].mean() + 0.3
    # Another axis: slices across the first one, all of them non-empty but the outer rim.
    across, first = decode_nifti(nifti(volume), "a.nii.gz", axis=0)
    assert first.axis == 0 and len(across) == len(first.slices) <= 24
    assert across[0].shape == (1, 20, 12)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (nifti(np.zeros((8, 8, 8), np.int16)), "every voxel is 0"),
        (nifti(np.ones((8, 8, 8, 3), np.int16)), "a 4-D volume (8×8×8×3); expected 3-D"),
        (nifti(np.ones((8, 8), np.int16)), "a 2-D volume"),
        (b"\x1f\x8b" + b"not gzip at all", "corrupt gzip data"),
        (b"plain nonsense" * 40, "not a readable NIfTI volume"),
    ],
)
def test_bad_volumes_say_why(data, reason):
    with pytest.raises(ImageDecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode_nifti(data, "bad.nii.gz")


def test_a_zip_of_dicom_files_and_nifti_volumes_imports_and_lists_what_it_skipped(tmp_path):
    rng = np.random.default_rng(1)
    entries = {}
    for k in range(3):
        entries[f"tumour/case{k}.nii.gz"] = nifti(brain_like((16, 16, 10), seed=k))
        pixels = (rng.random((20, 20)) * 4000).astype(np.uint16)
        entries[f"normal/scan{k}.dcm"] = make_dicom(pixels)
    entries["normal/series.nii.gz"] = nifti(np.ones((8, 8, 8, 2), np.int16))  # 4-D
    entries["normal/fake.dcm"] = b"not a dicom file"
    no_pixels = make_dicom(np.zeros((4, 4)))
    entries["normal/report.dcm"] = no_pixels.replace(b"\xe0\x7f\x10\x00", b"\xe0\x7f\x11\x00")
    path = tmp_path / "scans.zip"
    path.write_bytes(dataset_zip(entries).getvalue())

    folder = load_image_folder(path, image_size=16)
    split = folder.splits["all"]
    assert folder.class_names == ["normal", "tumour"]
    assert split.class_counts() == {"normal": 3, "tumour": 3 * 6}  # 10 slices, 4 empty
    assert "tumour/case0.nii.gz#2=2" in split.files
    assert [volume.file for volume in folder.volumes] == [
        f"tumour/case{k}.nii.gz" for k in range(3)
    ]
    assert all(volume.slices == list(range(2, 8)) for volume in folder.volumes)
    reasons = {skipped.path: skipped.reason for skipped in folder.skipped}
    assert "4-D volume" in reasons["normal/series.nii.gz"]
    assert "not a DICOM" in reasons["normal/fake.dcm"]
    assert "no pixel data" in reasons["normal/report.dcm"]
    assert split.images.shape[1:] == (1, 16, 16)
    assert float(split.images.min()) >= 0.0 and float(split.images.max()) <= 1.0
