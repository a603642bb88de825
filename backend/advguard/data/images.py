"""Decoding image files into float tensors in [0, 1]."""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class ImageDecodeError(ValueError):
    """A file that is not a usable image; the message says why."""


def _stretch(values: np.ndarray) -> np.ndarray:
    """Map the values' own range onto [0, 1] (all zeros for a constant image)."""
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _to_float_array(image: Image.Image, channels: int) -> np.ndarray:
    """Pixels as float32 ``H×W×C`` in [0, 1], whatever the PIL mode."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max(initial=0) > 255 or image.mode != "I" else 255.0
        array = np.clip(array / peak, 0.0, 1.0)[..., None]
    elif image.mode == "F":
        array = _stretch(np.asarray(image, dtype=np.float64))[..., None]
    else:
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            # Composite transparency onto black, the background of a scan.
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = Image.alpha_composite(background, rgba)
        array = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float64) / 255.0
        if array.ndim == 2:
            array = array[..., None]
    if array.shape[-1] != channels:
        array = (
            np.repeat(array, channels, axis=-1)
            if array.shape[-1] == 1
            else array.mean(axis=-1, keepdims=True)
        )
    return array.astype(np.float32)


def pad_to_square(image: Tensor) -> Tensor:
    """Zero-pad a ``C×H×W`` image to a centred square (scan backgrounds are black)."""
    height, width = image.shape[-2:]
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    return F.pad(image, (left, side - width - left, top, side - height - top))


def resize_square(image: Tensor, size: int) -> Tensor:
    """Pad ``C×H×W`` to a square and resize it to ``size×size`` (antialiased bilinear)."""
    square = pad_to_square(image)
    if square.shape[-1] == size:
        return square
    resized = F.interpolate(
        square[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
    )[0]
    return resized.clamp_(0.0, 1.0)


def decode_image(
    data: bytes, *, channels: int = 1, size: int | None = None, max_pixels: int = 50_000_000
) -> Tensor:
    """Decode PNG/JPEG bytes into a float32 ``C×H×W`` tensor in [0, 1].

    Raises ``ImageDecodeError`` with a readable reason for empty, truncated, oversized or
    unreadable files.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not data:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"image is {width}×{height}, over the limit of {max_pixels} pixels"
                )
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as error:
        # PIL's own message names its in-memory buffer object: nothing a user can act on.
        raise ImageDecodeError("not an image this service reads (PNG, JPEG or DICOM)") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError(f"not a readable image ({error})") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageDecodeError(f"corrupt or truncated image ({error})") from error
    array = _to_float_array(image, channels)
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return resize_square(tensor, size) if size is not None else tensor


COLOUR_TOLERANCE = 8 / 255
"""Channels that differ by no more than this are grey: a grey scan saved as a colour JPEG
differs by a level or two."""

LUMA_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma, the weights of PIL's conversion to grey."""


def is_colour(image: Tensor) -> bool:
    """Whether a ``C×H×W`` image has colour in it, not just grey stored in three channels."""
    if image.shape[0] == 1:
        return False
    return bool((image.amax(0) - image.amin(0)).max() > COLOUR_TOLERANCE)


def to_channels(image: Tensor, channels: int) -> Tensor:
    """A ``C×H×W`` image with ``channels`` (1 or 3) channels: grey repeated into three, or
    colour turned grey with :data:`LUMA_WEIGHTS`."""
    if image.shape[0] == channels:
        return image
    if channels == 3:
        return image.expand(3, -1, -1).contiguous()
    weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True).clamp_(0.0, 1.0)


def to_uint8(images: Tensor) -> Tensor:
    """Quantise [0, 1] images to 8-bit the way a PNG writer does (round to nearest)."""
    return (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def save_png(image: Tensor, path: str) -> None:
    """Write one ``C×H×W`` [0, 1] image as an 8-bit PNG."""
    pixels = to_uint8(image).permute(1, 2, 0).numpy()
    mode = "L" if pixels.shape[-1] == 1 else "RGB"
    Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode=mode).save(path)


DICOM_MAGIC_OFFSET = 128


def is_dicom(data: bytes) -> bool:
    """True for a DICOM Part 10 file (``DICM`` after the 128-byte preamble)."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + 4] == b"DICM"


def decode_dicom(
    data: bytes, *, channels: int = 1, size: int | None = None, max_pixels: int = 50_000_000
) -> Tensor:
    """Decode a single-frame DICOM image into a float32 ``C×H×W`` tensor in [0, 1].

    The stored values go through the modality rescale (slope/intercept) and, when the file
    has one, its window (VOI LUT); then the full range is stretched to [0, 1], as a viewer
    shows the slice. MONOCHROME1 (inverted) is flipped back.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        if not any(
            tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
        ):
            raise ImageDecodeError("DICOM file has no pixel data (a report or a structure set?)")
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
        if rows * columns * frames > max_pixels:
            raise ImageDecodeError(
                f"DICOM image is {columns}×{rows}×{frames}, over the limit of {max_pixels} pixels"
            )
        pixels = dataset.pixel_array
    except ImageDecodeError:
        raise
    except (InvalidDicomError, AttributeError, KeyError, ValueError, TypeError, OSError) as error:
        raise ImageDecodeError(f"not a readable DICOM image ({error})") from error
    except RuntimeError as error:  # compressed transfer syntax without its decoder
        raise ImageDecodeError(f"DICOM pixel data cannot be decoded here ({error})") from error
    if frames > 1:
        raise ImageDecodeError(f"DICOM file has {frames} frames; send one slice per file")
    values = apply_modality_lut(pixels, dataset)
    if "WindowCenter" in dataset or "VOILUTSequence" in dataset:
        values = apply_voi_lut(values, dataset)
    scaled = _stretch(np.asarray(values, dtype=np.float64))
    if getattr(dataset, "PhotometricInterpretation", "") == "MONOCHROME1":
        scaled = 1.0 - scaled
    array = scaled[..., None] if scaled.ndim == 2 else scaled  # H×W×3 for an RGB DICOM
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))
    # Converted as datasets convert (they decode in colour, then call to_channels), so that
    # predict sees a colour DICOM as the detector's training scans did.
    tensor = to_channels(tensor, channels)
    return resize_square(tensor, size) if size is not None else tensor


def decode_upload(
    data: bytes, *, channels: int = 1, size: int | None = None, max_pixels: int = 50_000_000
) -> Tensor:
    """Decode an uploaded PNG, JPEG or DICOM file (told apart by content, not by name)."""
    if is_dicom(data):
        return decode_dicom(data, channels=channels, size=size, max_pixels=max_pixels)
    return decode_image(data, channels=channels, size=size, max_pixels=max_pixels)
