"""The bundled default dataset: synthetic brain-MRI-like slices with four tumour classes.

The images are built from the real MNI152 T1 template and brain mask that ship inside the
nilearn wheel (loaded offline, no download). Each image is one axial slice of the template,
turned so that the nose points up, with a random in-plane rotation, zoom, shift, mirror and
slight elastic warp, a random intensity scale, gamma and bias field, Rician noise and, for
three of the four classes, a synthetic lesion:

``glioma``
    an irregular intra-axial mass in one hemisphere: a bright enhancing rim around a dark
    necrotic core, inside a faint darker rim of oedema.
``meningioma``
    a well-circumscribed, homogeneous bright oval with a broad base on the brain surface
    (convexity) or on the midline (falx).
``pituitary``
    a small round bright mass on the midline in the central-anterior (sellar) area.
``notumor``
    no lesion; the same augmentations.

This is a demonstration set, not medical data: every image shows the same (average) brain,
and the lesions are drawn shapes. Neighbouring slices are nearly identical, so the split into
train and test is by slice position: the usable slices are cut into contiguous blocks, every
fourth block goes to test, and the train slices next to a test slice are dropped, so no two
slices on opposite sides are closer than two slices apart. ``ImageDataset.groups`` holds the
slice index of each image so that later hold-out splits keep slices together.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from scipy.special import expit

from advguard.data.dataset import ImageDataset

BUNDLED_CLASS_NAMES = ["glioma", "meningioma", "notumor", "pituitary"]
"""Class names of the bundled dataset: sorted, as in the real brain-tumour MRI dataset."""

DEFAULT_PER_CLASS: dict[str, int] = {"train": 150, "test": 50}
"""Images per class in each split unless ``per_class`` says otherwise."""

SPLIT_NAMES = ("train", "test")

_RESOLUTION_MM = 1  # Template resolution; 1 mm loads in well under a second.
_MIN_AREA_FRACTION = 0.55  # Use axial slices whose brain area is at least this share of the max.
_BLOCK_SLICES = 6  # Slices per contiguous block of the slice split.
_TEST_EVERY = 4  # Every fourth block goes to test.
_MARGIN_FRACTION = 0.06  # Black border around the brain, as a share of its extent.
_CLOSING_PX = 10  # Radius of the closing that outlines the whole brain, in template voxels.
_CHUNK = 128  # Images warped at once.

_ROTATION_DEG = 8.0
_ZOOM_RANGE = (0.92, 1.08)
_SHIFT = 0.04  # Largest shift, as a share of the half-width of the image.
_ELASTIC_STD = 0.012  # Displacement of the 4x4 elastic control points, normalized units.


@dataclass(frozen=True)
class _SliceStack:
    """Usable axial slices, upright (nose up), cropped to a square around the brain."""

    intensity: np.ndarray  # ZxLxL float32 in [0, 1]
    mask: np.ndarray  # ZxLxL float32, 1 inside the brain
    signed_distance: np.ndarray  # ZxLxL float32, pixels to the brain edge, positive inside
    closed_distance: np.ndarray  # the same for the brain outline with gaps and notches closed
    z_index: np.ndarray  # Z int64, the voxel index of each slice along the axial axis


@lru_cache(maxsize=1)
def _load_slice_stack() -> _SliceStack:
    """Load the MNI152 template and mask from the nilearn wheel and cut the usable slices."""
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template

    template_image = load_mni152_template(resolution=_RESOLUTION_MM)
    template = np.asarray(template_image.dataobj, np.float32)
    brain = np.asarray(load_mni152_brain_mask(resolution=_RESOLUTION_MM).dataobj) > 0
    template = np.clip(np.nan_to_num(template), 0.0, 1.0) * brain

    area = brain.sum(axis=(0, 1))
    z_index = np.flatnonzero(area >= _MIN_AREA_FRACTION * area.max())
    z_index = np.arange(z_index.min(), z_index.max() + 1)  # contiguous

    # Voxel arrays are x (left→right), y (posterior→anterior), z; make rows run anterior to
    # posterior so that the nose points up.
    upright = np.ascontiguousarray(template[:, :, z_index].transpose(2, 1, 0)[:, ::-1, :])
    upright_mask = np.ascontiguousarray(brain[:, :, z_index].transpose(2, 1, 0)[:, ::-1, :])

    # Square crop around the brain, centred on the midline (x = 0 mm) left to right.
    rows = np.flatnonzero(upright_mask.any(axis=(0, 2)))
    cols = np.flatnonzero(upright_mask.any(axis=(0, 1)))
    # Voxel column of x = 0 mm, the midline of the (roughly symmetric) template.
    midline = round(-template_image.affine[0, 3] / template_image.affine[0, 0])
    half_width = max(midline - cols.min(), cols.max() - midline) + 1
    extent = max(2 * half_width, rows.max() - rows.min() + 1)
    side = round(extent * (1 + 2 * _MARGIN_FRACTION))
    side += side % 2
    top = (rows.min() + rows.max() + 1) // 2 - side // 2
    left = midline - side // 2
    intensity = _crop_with_zeros(upright, top, left, side)
    mask = _crop_with_zeros(upright_mask.astype(np.float32), top, left, side)

    signed = np.empty_like(mask)
    closed_signed = np.empty_like(mask)
    for k, plane in enumerate(mask > 0.5):
        signed[k] = _signed_distance(plane)
        # Morphological closing (dilate, then erode, by _CLOSING_PX) fills the gap between
        # the temporal lobes in low slices, where the sella and the pituitary sit.
        dilated = signed[k] > -_CLOSING_PX
        closed = ndimage.binary_fill_holes(ndimage.distance_transform_edt(dilated) > _CLOSING_PX)
        closed_signed[k] = _signed_distance(closed | plane)
    stack = _SliceStack(intensity, mask, signed, closed_signed, z_index.astype(np.int64))
    for array in (stack.intensity, stack.mask, stack.signed_distance, stack.closed_distance):
        array.flags.writeable = False  # cached and shared between calls
    stack.z_index.flags.writeable = False
    return stack


def _signed_distance(plane: np.ndarray) -> np.ndarray:
    """Euclidean distance in pixels to the edge of ``plane``: positive inside, negative out."""
    inside = ndimage.distance_transform_edt(plane)
    outside = ndimage.distance_transform_edt(~plane)
    return (inside - outside).astype(np.float32)


def _crop_with_zeros(stack: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """Crop ``stack[:, top:top+side, left:left+side]``, padding with zeros where it runs out."""
    out = np.zeros((stack.shape[0], side, side), dtype=stack.dtype)
    src_rows = slice(max(top, 0), min(top + side, stack.shape[1]))
    src_cols = slice(max(left, 0), min(left + side, stack.shape[2]))
    dst_rows = slice(src_rows.start - top, src_rows.stop - top)
    dst_cols = slice(src_cols.start - left, src_cols.stop - left)
    out[:, dst_rows, dst_cols] = stack[:, src_rows, src_cols]
    return out


@lru_cache(maxsize=4)
def _resized_stack(image_size: int) -> torch.Tensor:
    """Slices resized to ``image_size``: Zx4xSxS.

    Channels: intensity, brain mask, signed distance to the brain edge and to the closed
    brain outline (both in output pixels).
    """
    stack = _load_slice_stack()
    side = stack.intensity.shape[-1]
    scale = image_size / side
    channels = np.stack(
        [
            stack.intensity,
            stack.mask,
            stack.signed_distance * scale,
            stack.closed_distance * scale,
        ],
        axis=1,
    )
    resized = F.interpolate(
        torch.from_numpy(channels),
        size=(image_size, image_size),
        mode="bilinear",
        align_corners=False,
        antialias=image_size < side,
    )
    return resized.contiguous()


def bundled_slice_split() -> dict[str, list[int]]:
    """Axial slice indices (voxel z) used by each split of the bundled dataset.

    Blocks of ``_BLOCK_SLICES`` contiguous slices; every ``_TEST_EVERY``-th block (starting
    with the third) is test; train slices within one slice of a test slice are dropped.
    """
    z_index = _load_slice_stack().z_index
    block = np.arange(len(z_index)) // _BLOCK_SLICES
    is_test = block % _TEST_EVERY == _TEST_EVERY // 2
    test = z_index[is_test]
    near_test = np.abs(z_index[:, None] - test[None, :]).min(axis=1) <= 1
    train = z_index[~is_test & ~near_test]
    return {"train": train.tolist(), "test": test.tolist()}


def _resolve_per_class(per_class: Mapping[str, int] | None) -> dict[str, int]:
    counts = dict(DEFAULT_PER_CLASS)
    for split, count in (per_class or {}).items():
        if split not in SPLIT_NAMES:
            raise ValueError(f"per_class keys must be among {SPLIT_NAMES}, got {split!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"per_class[{split!r}] must be a non-negative int, got {count!r}")
        counts[split] = count
    return counts


def make_bundled_dataset(
    *, image_size: int = 128, per_class: Mapping[str, int] | None = None, seed: int = 0
) -> dict[str, ImageDataset]:
    """Build the bundled synthetic brain-MRI-like dataset.

    Args:
        image_size: side of the square single-channel images, in pixels (at least 32).
        per_class: images per class for each split, as ``{"train": n, "test": m}``; a split
            left out keeps its default (150 for train, 50 for test).
        seed: non-negative seed; the same seed gives identical tensors. Image ``i`` of a
            class and split depends only on ``(seed, split, class, i)``, so asking for more
            images keeps the first ones unchanged.

    Returns:
        ``{"train": ..., "test": ...}``, each an :class:`ImageDataset` with float32
        ``Nx1xSxS`` images in [0, 1], int64 labels indexing :data:`BUNDLED_CLASS_NAMES`,
        ids such as ``"synthetic/train/glioma/z045_0003"`` (``z045`` is the axial slice)
        and ``groups`` holding the axial slice index of each image. Images are ordered by
        class. No slice appears in both splits and no train slice neighbours a test slice.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int of at least 32, got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    counts = _resolve_per_class(per_class)
    slices = _resized_stack(image_size)
    z_to_position = {int(z): k for k, z in enumerate(_load_slice_stack().z_index)}
    split_slices = bundled_slice_split()
    return {
        split: _make_split(
            split=split,
            split_id=split_id,
            count=counts[split],
            slice_pool=np.asarray(split_slices[split], dtype=np.int64),
            z_to_position=z_to_position,
            slices=slices,
            seed=seed,
        )
        for split_id, split in enumerate(SPLIT_NAMES)
    }


@dataclass
class _Draw:
    """Per-image random choices made before the geometric warp."""

    rng: np.random.Generator
    label: int
    z: int
    theta: np.ndarray  # 2x3 affine from output to source normalized coordinates
    elastic: np.ndarray  # 2x4x4 control-point displacements
    zoom: float


def _draw_geometry(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    angle = math.radians(rng.uniform(-_ROTATION_DEG, _ROTATION_DEG))
    zoom = rng.uniform(*_ZOOM_RANGE)
    mirror = -1.0 if rng.random() < 0.5 else 1.0
    shift = rng.uniform(-_SHIFT, _SHIFT, size=2)
    cos, sin = math.cos(angle), math.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]]) @ np.diag([mirror, 1.0]) / zoom
    theta = np.concatenate([linear, shift[:, None]], axis=1)
    elastic = rng.standard_normal((2, 4, 4)) * _ELASTIC_STD
    return theta, elastic, zoom


def _make_split(
    *,
    split: str,
    split_id: int,
    count: int,
    slice_pool: np.ndarray,
    z_to_position: dict[int, int],
    slices: torch.Tensor,
    seed: int,
) -> ImageDataset:
    size = slices.shape[-1]
    draws: list[_Draw] = []
    files: list[str] = []
    for label, name in enumerate(BUNDLED_CLASS_NAMES):
        for i in range(count):
            rng = np.random.default_rng([seed, split_id, label, i])
            z = int(slice_pool[rng.integers(len(slice_pool))])
            theta, elastic, zoom = _draw_geometry(rng)
            draws.append(_Draw(rng, label, z, theta, elastic, zoom))
            files.append(f"synthetic/{split}/{name}/z{z:03d}_{i:04d}")

    images = torch.zeros((len(draws), 1, size, size), dtype=torch.float32)
    basis = _spline_basis(size, 4).astype(np.float32)
    # Pixel centres in normalized coordinates (align_corners=False convention).
    axis = ((2.0 * np.arange(size) + 1.0) / size - 1.0).astype(np.float32)
    for first in range(0, len(draws), _CHUNK):
        chunk = draws[first : first + _CHUNK]
        source = slices[[z_to_position[d.z] for d in chunk]]
        theta = np.stack([d.theta for d in chunk]).astype(np.float32)[:, :, :, None, None]
        elastic = np.stack([d.elastic for d in chunk]).astype(np.float32)
        displacement = basis @ elastic @ basis.T  # nx2xSxS
        grid_np = (
            theta[:, :, 0] * axis[None, None, None, :]
            + theta[:, :, 1] * axis[None, None, :, None]
            + theta[:, :, 2]
            + displacement
        ).transpose(0, 2, 3, 1)  # nxSxSx2 holding (x, y) source coordinates
        warped = F.grid_sample(
            source,
            torch.from_numpy(np.ascontiguousarray(grid_np)),
            mode="bilinear",
            padding_mode="border",  # the crop has a black margin; distances stay negative
            align_corners=False,
        ).numpy()
        for n, draw in enumerate(chunk):
            image = _render(
                intensity=warped[n, 0].astype(np.float64),
                mask=np.clip(warped[n, 1], 0.0, 1.0).astype(np.float64),
                signed_distance=warped[n, 2].astype(np.float64) * draw.zoom,
                closed_distance=warped[n, 3].astype(np.float64) * draw.zoom,
                source_xy=grid_np[n].astype(np.float64),
                label=draw.label,
                rng=draw.rng,
            )
            images[first + n, 0] = torch.from_numpy(image)

    return ImageDataset(
        images=images,
        labels=torch.tensor([d.label for d in draws], dtype=torch.int64),
        class_names=list(BUNDLED_CLASS_NAMES),
        files=files,
        groups=torch.tensor([d.z for d in draws], dtype=torch.int64),
    )


@lru_cache(maxsize=32)
def _spline_basis(size: int, knots: int) -> np.ndarray:
    """``size``x``knots`` matrix that cubic-spline-zooms ``knots`` values to ``size``."""
    basis = ndimage.zoom(
        np.eye(knots), (size / knots, 1.0), order=3, mode="nearest", grid_mode=True
    )
    return np.ascontiguousarray(basis[:size])


def _smooth_noise(rng: np.random.Generator, size: int, knots: int) -> np.ndarray:
    """Smooth random field of about unit spread: ``knots``x``knots`` normals, cubic-zoomed."""
    basis = _spline_basis(size, knots)
    return basis @ rng.standard_normal((knots, knots)) @ basis.T


def _render(
    *,
    intensity: np.ndarray,
    mask: np.ndarray,
    signed_distance: np.ndarray,
    closed_distance: np.ndarray,
    source_xy: np.ndarray,
    label: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Scale the warped slice, draw the lesion of ``label``, then vary contrast and add noise."""
    size = intensity.shape[0]
    image = intensity * rng.uniform(0.7, 0.82)
    kind = BUNDLED_CLASS_NAMES[label]
    if kind == "glioma":
        image = _draw_glioma(image, mask, signed_distance, source_xy, rng)
    elif kind == "meningioma":
        image = _draw_meningioma(image, signed_distance, source_xy, rng)
    elif kind == "pituitary":
        image = _draw_pituitary(image, closed_distance, source_xy, rng)

    image = image * np.exp(0.07 * _smooth_noise(rng, size, 3))  # coil bias field
    image = np.clip(image, 0.0, None) ** rng.uniform(0.85, 1.2)
    image = image * rng.uniform(0.9, 1.12)
    sigma = rng.uniform(0.008, 0.03)
    noise = rng.standard_normal((2, size, size)) * sigma
    image = np.sqrt((image + noise[0]) ** 2 + noise[1] ** 2)  # Rician magnitude noise
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _pick_pixel(
    rng: np.random.Generator, candidates: list[np.ndarray]
) -> tuple[float, float] | None:
    """A random pixel (row, col) of the first non-empty candidate mask, or ``None``."""
    for candidate in candidates:
        rows, cols = np.nonzero(candidate)
        if len(rows):
            k = rng.integers(len(rows))
            return float(rows[k]), float(cols[k])
    return None


def _polar(size: int, center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of every pixel from ``center``."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    return rows - center[0], cols - center[1]


def _unit(vector: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 1e-6 else fallback


def _draw_glioma(
    image: np.ndarray,
    mask: np.ndarray,
    signed_distance: np.ndarray,
    source_xy: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    size = image.shape[0]
    radius = rng.uniform(0.07, 0.14) * size
    radius_normalized = 2.0 * radius / size
    lateral = np.abs(source_xy[..., 0])
    center = _pick_pixel(
        rng,
        [
            (signed_distance > 1.2 * radius) & (lateral > 0.8 * radius_normalized),
            (signed_distance > 0.8 * radius) & (lateral > 0.4 * radius_normalized),
            signed_distance > 0.5 * radius,
        ],
    )
    if center is None:
        return image
    dy, dx = _polar(size, center)
    angle = np.arctan2(dy, dx)
    wobble = np.ones_like(angle)
    for k in range(2, 6):
        wobble += rng.uniform(0.0, 0.22 / k) * np.cos(k * angle + rng.uniform(0, 2 * math.pi))
    distance = np.hypot(dy, dx) / (radius * wobble) + 0.1 * _smooth_noise(rng, size, 10)

    edge = 1.2 / radius  # about one pixel of soft edge, in units of the radius
    rim_width = rng.uniform(0.25, 0.45)
    oedema_reach = rng.uniform(0.4, 0.9)
    inside = expit((1.0 - distance) / edge)
    rim = rim_width * (1.0 + 0.3 * _smooth_noise(rng, size, 8))  # uneven enhancement
    core = expit((1.0 - rim - distance) / edge)
    oedema = np.clip(expit((1.0 + oedema_reach - distance) / (3 * edge)) - inside, 0.0, 1.0)

    texture = 1.0 + 0.08 * _smooth_noise(rng, size, 16)
    rim_value = rng.uniform(0.82, 1.0) * texture
    core_value = rng.uniform(0.12, 0.32) * texture
    darker = rng.uniform(0.68, 0.85)  # oedema is hypointense on T1
    brain = np.clip(mask * 1.5, 0.0, 1.0)
    out = image * (1.0 - oedema * (1.0 - darker) * brain)
    lesion = rim_value * (inside - core) + core_value * core
    weight = inside * brain
    return out * (1.0 - weight) + lesion * brain


def _draw_meningioma(
    image: np.ndarray,
    signed_distance: np.ndarray,
    source_xy: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    size = image.shape[0]
    radius = rng.uniform(0.07, 0.13) * size
    depth = radius * rng.uniform(0.65, 0.95)  # semi-axis across the base
    breadth = radius * rng.uniform(1.1, 1.6)  # semi-axis along the base
    pixel = 2.0 / size
    falx = rng.random() < 0.3
    if falx:
        center = _pick_pixel(
            rng, [(np.abs(source_xy[..., 0]) < pixel) & (signed_distance > 1.3 * breadth)]
        )
    else:
        center = None
    if center is None:
        falx = False
        center = _pick_pixel(rng, [(signed_distance > 0.0) & (signed_distance <= 1.5)])
    if center is None:
        return image

    row, col = int(center[0]), int(center[1])
    if falx:
        # Across the midline: the direction in which the source x coordinate grows.
        grad_rows, grad_cols = np.gradient(source_xy[..., 0])
        normal = _unit(np.array([grad_rows[row, col], grad_cols[row, col]]), np.array([0.0, 1.0]))
        normal = normal if rng.random() < 0.5 else -normal  # grows into one hemisphere
        offset = depth * rng.uniform(0.5, 0.9)
    else:
        # Inward normal of the brain surface: the signed distance grows inside.
        grad_rows, grad_cols = np.gradient(ndimage.gaussian_filter(signed_distance, 1.5))
        normal = _unit(np.array([grad_rows[row, col], grad_cols[row, col]]), np.array([1.0, 0.0]))
        offset = depth * rng.uniform(0.35, 0.7)
    center = (center[0] + normal[0] * offset, center[1] + normal[1] * offset)
    dy, dx = _polar(size, center)
    across = dy * normal[0] + dx * normal[1]
    along = -dy * normal[1] + dx * normal[0]
    distance = np.hypot(across / depth, along / breadth) * (
        1.0 + 0.03 * _smooth_noise(rng, size, 8)
    )
    inside = expit((1.0 - distance) / (1.2 / radius))
    # Extra-axial: it may bulge a little past the brain surface, but no further.
    allowed = expit((signed_distance + 0.25 * depth) / 1.0)
    weight = inside * allowed
    value = rng.uniform(0.84, 1.0) * (1.0 + 0.03 * _smooth_noise(rng, size, 12))
    return image * (1.0 - weight) + value * weight


def _draw_pituitary(
    image: np.ndarray,
    closed_distance: np.ndarray,
    source_xy: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """A small bright round mass on the midline, central-anterior (the sellar region).

    Placed within the closed brain outline, so in low slices it may sit in the gap between
    the temporal lobes, where the sella is.
    """
    size = image.shape[0]
    radius = rng.uniform(0.03, 0.055) * size
    pixel = 2.0 / size
    midline = np.abs(source_xy[..., 0]) < 1.5 * pixel
    sellar = (source_xy[..., 1] > -0.32) & (source_xy[..., 1] < -0.08)
    center = _pick_pixel(
        rng,
        [
            midline & sellar & (closed_distance > 1.5 * radius),
            midline & (source_xy[..., 1] < 0.1) & (closed_distance > radius),
            closed_distance > radius,
        ],
    )
    if center is None:
        return image
    dy, dx = _polar(size, center)
    tilt = rng.uniform(-0.4, 0.4)
    u = dx * math.cos(tilt) + dy * math.sin(tilt)
    v = -dx * math.sin(tilt) + dy * math.cos(tilt)
    width = radius * rng.uniform(0.95, 1.25)
    height = radius * rng.uniform(0.8, 1.05)
    distance = np.hypot(u / width, v / height)
    inside = expit((1.0 - distance) * radius) * expit(closed_distance)
    value = rng.uniform(0.86, 1.0) * (1.0 + 0.04 * _smooth_noise(rng, size, 12))
    return image * (1.0 - inside) + value * inside
