"""DICOM decoding for predict uploads (pydicom), checked against the stored pixel values."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from advguard.data import ImageDecodeError, decode_dicom, decode_upload, load_image_folder


def make_dicom(
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
    frames: int = 1,
) -> bytes:
    """A minimal single- or multi-frame 16-bit DICOM file in memory."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "MR"
    dataset.Rows, dataset.Columns = pixels.shape[-2:]
    if frames > 1:
        dataset.NumberOfFrames = frames
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 12, 11
    dataset.PixelRepresentation = 0
    dataset.RescaleSlope, dataset.RescaleIntercept = slope, intercept
    dataset.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_is_scaled_from_its_own_range():
    rng = np.random.default_rng(0)
    pixels = rng.integers(100, 4000, size=(48, 64))
    decoded = decode_upload(make_dicom(pixels, slope=2.0, intercept=-50.0), channels=1)
    expected = (pixels - pixels.min()) / (pixels.max() - pixels.min())
    assert decoded.shape == (1, 48, 64)
    assert torch.allclose(decoded[0], torch.from_numpy(expected).float(), atol=1e-6)


def make_rgb_dicom(pixels: np.ndarray) -> bytes:
    """A minimal 8-bit RGB DICOM file (``H×W×3`` pixels, colour by pixel)."""
    grey = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros(pixels.shape[:2]))))
    grey.SamplesPerPixel, grey.PhotometricInterpretation = 3, "RGB"
    grey.PlanarConfiguration = 0
    grey.BitsAllocated, grey.BitsStored, grey.HighBit = 8, 8, 7
    grey.PixelData = pixels.astype(np.uint8).tobytes()
    buffer = io.BytesIO()
    dcmwrite(buffer, grey, enforce_file_format=True)
    return buffer.getvalue()


def test_a_colour_dicom_is_made_grey_as_a_dataset_makes_it(tmp_path):
    """Predict (decoded straight to grey) and a dataset (decoded in colour, then made grey)
    give a colour DICOM the same grey image: the stretched colour, in luma."""
    rgb = np.random.default_rng(1).integers(0, 256, size=(24, 32, 3))
    data = make_rgb_dicom(rgb)
    colour = decode_upload(data, channels=3)
    stretched = (rgb - rgb.min()) / (rgb.max() - rgb.min())
    assert torch.allclose(colour, torch.from_numpy(stretched).permute(2, 0, 1).float(), atol=1e-6)
    grey = decode_upload(data, channels=1, size=16)
    luma = (stretched * np.array([0.299, 0.587, 0.114])).sum(-1)
    assert torch.allclose(
        decode_upload(data, channels=1)[0], torch.from_numpy(luma).float(), atol=1e-6
    )
    for kind in ("a", "b"):
        (tmp_path / kind).mkdir()
        (tmp_path / kind / "scan.dcm").write_bytes(data)
    dataset = load_image_folder(tmp_path, image_size=16, channels=1).splits["all"]
    assert torch.allclose(dataset.images[0], grey, atol=1e-6)


def test_monochrome1_is_inverted_and_resized():
    pixels = np.tile(np.arange(64, dtype=np.uint16) * 50, (64, 1))
    normal = decode_dicom(make_dicom(pixels), size=32)
    inverted = decode_dicom(make_dicom(pixels, photometric="MONOCHROME1"), size=32)
    assert normal.shape == inverted.shape == (1, 32, 32)
    assert torch.allclose(normal + inverted, torch.ones_like(normal), atol=1e-6)


def test_bad_dicom_files_are_refused_with_a_reason():
    pixels = np.zeros((2, 16, 16))
    with pytest.raises(ImageDecodeError, match="2 frames"):
        decode_dicom(make_dicom(pixels, frames=2))
    truncated = make_dicom(np.ones((64, 64)))[:400]
    with pytest.raises(ImageDecodeError, match="DICOM"):
        decode_upload(truncated)
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_dicom(make_dicom(np.ones((64, 64))), max_pixels=1000)
