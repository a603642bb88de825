"""Query fingerprints for noticing black-box attacks from a stream of queries.

A query-based attack (Square, HopSkipJump, …) sends hundreds of images that differ from
each other by a few grey levels; a clinic does not. Following Blacklight (Li et al., USENIX
Security 2022), an image's fingerprint is a small set of hashes of short runs of
coarsely quantised pixels: two queries of one attack share most of their runs (a step
changes one square, or moves a little along a line), two different scans share almost none.

How one fingerprint is made:

1. pixels as 8-bit values, divided by ``step``,
2. every run of ``window`` consecutive pixels (row-major, all channels) starting at every
   ``stride``-th pixel is hashed with a polynomial rolling hash, then mixed (splitmix64),
   all in vectorised integer arithmetic,
3. runs that are one flat level (background, saturated areas: common to every scan, so
   they would make unrelated scans look alike) are dropped,
4. the ``keep`` largest distinct hashes are kept: a pseudo-random but deterministic sample
   of the image's runs, the same sample for near-identical images.

The defaults are finer than Blacklight's (grey levels of 16, not 50; runs of 24 pixels):
with coarse levels, MRI slices share many runs (the skull's edge against the black
background looks alike in every scan) and a clinic's unrelated scans matched each other;
an attack step changes one square or moves along one line, so its queries still share
most runs at fine levels. Measured on brain-mri-4class in ``bench/query_watch.py``.

The kept values are hashes of runs of coarse grey levels, never pixels; the service stores
them only after mixing in a secret key (:func:`seal`), so nothing stored can be turned
back into an image or matched against fingerprints computed elsewhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit
from numpy.typing import NDArray
from torch import Tensor

# Compiled with numba: predict fingerprints every image, and as ~40 numpy calls the
# fingerprint cost 0.7 ms in the server (each call pays a few microseconds of overhead
# with the processor cold after the model or an idle wait); as one compiled loop it costs
# a fraction of that. ``cache=True`` keeps the machine code beside the module (compiled
# once, ~5 s), ``nogil`` lets other threads run meanwhile.

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
_INVERSE = np.uint64(pow(0x9E3779B97F4A7C15, -1, 2**64))
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class FingerprintConfig:
    """How images are fingerprinted (see the module docstring); the defaults were chosen
    on brain-mri-4class against Square and HopSkipJump (``bench/query_watch.py``)."""

    step: int = 16
    """Quantisation step in 8-bit grey levels."""
    window: int = 24
    """Pixels per hashed run."""
    keep: int = 50
    """Hashes kept per image."""
    stride: int = 2
    """Hash the runs starting at every ``stride``-th pixel (2 halves the work and matched
    as well as 1 on the measured streams)."""

    def __post_init__(self) -> None:
        for name in ("step", "window", "keep", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"fingerprint {name} must be at least 1")


DEFAULT_FINGERPRINT = FingerprintConfig()


@njit(cache=True, nogil=True)
def _splitmix(value: np.uint64) -> np.uint64:
    """The splitmix64 finaliser: every output bit depends on every input bit."""
    value ^= value >> np.uint64(30)
    value *= _MIX_1
    value ^= value >> np.uint64(27)
    value *= _MIX_2
    return value ^ (value >> np.uint64(31))


@njit(cache=True, nogil=True)
def _is_flat(value: np.uint64, flat: NDArray[np.uint64]) -> bool:
    for flat_value in flat:  # noqa: SIM110 (numba compiles loops, not generators)
        if flat_value == value:
            return True
    return False


@njit(cache=True, nogil=True)
def _insert_at(top: NDArray[np.uint64], filled: int, value: np.uint64) -> int:
    """Where ``value`` goes in the sorted ``top[:filled]``; −1 when it is there already."""
    low, high = 0, filled
    while low < high:
        middle = (low + high) // 2
        if top[middle] < value:
            low = middle + 1
        else:
            high = middle
    return -1 if low < filled and top[low] == value else low


@njit(cache=True, nogil=True)
def _top_hashes(
    pixels: NDArray[np.uint8],
    config: tuple[int, int, int],
    tables: tuple[NDArray[np.uint64], NDArray[np.uint64]],
) -> NDArray[np.uint64]:
    """The ``keep`` largest distinct mixed hashes of the image's varied runs, ascending
    (``config``: window, stride, keep; ``tables``: :func:`_tables`).

    The polynomial hash of the run starting at ``i`` is ``Σ_j levels[i+j]·B^j``; with the
    running sums ``P[k] = Σ_{t<k} levels[t]·B^t`` it is ``(P[i+w] − P[i])·B^−i`` (modulo
    2**64, exact: B is odd, so B^−i exists): two running sums and one product per run, the
    powers carried along in registers (from arrays, reading them cold cost more). The
    largest hashes are kept in a small sorted array: after the first few hundred runs
    almost every hash is below its smallest and costs one comparison.
    """
    window, stride, keep = config
    lookup, flat = tables
    ahead = np.uint64(1)  # B^w
    for _ in range(window):
        ahead *= _MULTIPLIER
    back = np.uint64(1)  # B^−stride
    for _ in range(stride):
        back *= _INVERSE
    top = np.empty(keep, np.uint64)
    filled = 0
    count = pixels.size - window + 1
    lagging = np.uint64(0)  # P[start]
    leading = np.uint64(0)  # P[start + window]
    power = np.uint64(1)  # B^start
    for k in range(min(window, pixels.size)):
        leading += lookup[pixels[k]] * power
        power *= _MULTIPLIER
    power = np.uint64(1)
    inverse = np.uint64(1)  # B^−start at each start
    next_start = 0
    for start in range(count):  # one flat loop: a nested one per start cost twice as much
        if start == next_start:
            next_start += stride
            value = _splitmix((leading - lagging) * inverse)
            inverse *= back
            if (filled < keep or value > top[0]) and not _is_flat(value, flat):
                at = _insert_at(top, filled, value)
                if at >= 0 and filled < keep:  # shift the larger ones up one place
                    for k in range(filled, at, -1):
                        top[k] = top[k - 1]
                    top[at] = value
                    filled += 1
                elif at >= 0:  # full: drop the smallest, shift the smaller ones down
                    for k in range(at - 1):
                        top[k] = top[k + 1]
                    top[at - 1] = value
        if start + 1 < count:
            lagging += lookup[pixels[start]] * power
            leading += lookup[pixels[start + window]] * (power * ahead)
            power *= _MULTIPLIER
    return top[:filled].copy()


@njit(cache=True, nogil=True)
def _to_pixels(values: NDArray[np.float32]) -> NDArray[np.uint8]:
    pixels = np.empty(values.size, np.uint8)
    scale = np.float32(255.0)
    for k in range(values.size):
        value = min(max(values[k], np.float32(0.0)), np.float32(1.0))
        pixels[k] = np.uint8(np.rint(value * scale))
    return pixels


@njit(cache=True, nogil=True)
def _seal(hashes: NDArray[np.uint64], key: tuple[np.uint64, np.uint64]) -> NDArray[np.uint64]:
    sealed = np.empty(hashes.size, np.uint64)
    for k in range(hashes.size):
        sealed[k] = _splitmix(hashes[k] ^ key[0]) + key[1]
    return sealed


@njit(cache=True, nogil=True)
def _sealed_fingerprint(
    values: NDArray[np.float32],
    config: tuple[int, int, int],
    tables: tuple[NDArray[np.uint64], NDArray[np.uint64]],
    key: tuple[np.uint64, np.uint64],
) -> tuple[NDArray[np.uint8], NDArray[np.uint64]]:
    pixels = _to_pixels(values)
    return pixels, _seal(_top_hashes(pixels, config, tables), key)


@functools.lru_cache(maxsize=8)
def _settings(
    config: FingerprintConfig,
) -> tuple[tuple[int, int, int], tuple[NDArray[np.uint64], NDArray[np.uint64]]]:
    """The kernel's arguments for ``config``: window, stride and keep; each 8-bit value's
    level, and the mixed hash of a flat run of each level (a run is flat exactly when its
    hash is one of these: the hash of ``v, v, …, v`` does not depend on where it starts)."""
    lookup = (np.arange(256) // config.step).astype(np.uint64)
    ones = sum(pow(int(_MULTIPLIER), j, 2**64) for j in range(config.window)) % 2**64
    flat = [_splitmix(np.uint64(level * ones % 2**64)) for level in range(255 // config.step + 1)]
    tables = (lookup, np.array(flat, dtype=np.uint64))
    return (config.window, config.stride, config.keep), tables


@functools.lru_cache(maxsize=4)
def _key_words(key: bytes) -> tuple[np.uint64, np.uint64]:
    if len(key) < 16:
        raise ValueError("the sealing key needs at least 16 bytes")
    before, after = np.frombuffer(key[:16], dtype=np.uint64)
    return before, after


def _values(images: Tensor) -> NDArray[np.float32]:
    """``N×…`` images as one float32 row of values per image (one conversion per batch)."""
    return images.detach().to("cpu", torch.float32).contiguous().numpy().reshape(len(images), -1)


def to_pixels(image: Tensor) -> NDArray[np.uint8]:
    """A ``C×H×W`` image in [0, 1] as its 8-bit values (rounded to nearest), flattened."""
    return _to_pixels(_values(image[None])[0])  # type: ignore[no-any-return]


def fingerprint(
    image: Tensor | NDArray[np.uint8], config: FingerprintConfig = DEFAULT_FINGERPRINT
) -> NDArray[np.uint64]:
    """The fingerprint of one ``C×H×W`` image in [0, 1] (or its :func:`to_pixels`): up to
    ``config.keep`` distinct 64-bit hashes, sorted (fewer for an image with few varied
    runs, none for a flat one)."""
    pixels = to_pixels(image) if isinstance(image, Tensor) else np.ascontiguousarray(image)
    return _top_hashes(pixels, *_settings(config))  # type: ignore[no-any-return]


def sealed_fingerprints(
    images: Tensor, key: bytes, config: FingerprintConfig = DEFAULT_FINGERPRINT
) -> list[tuple[NDArray[np.uint8], NDArray[np.uint64]]]:
    """For each of ``N×C×H×W`` images, ``(to_pixels(image), sealed hashes)``: the values
    of :func:`seal` as integers, from one compiled call per image (what predict pays)."""
    settings, words = _settings(config), _key_words(key)
    return [_sealed_fingerprint(row, *settings, words) for row in _values(images)]


def overlap(first: NDArray[np.uint64], second: NDArray[np.uint64]) -> int:
    """Hashes two fingerprints share."""
    return int(np.intersect1d(first, second, assume_unique=True).size)


def seal(hashes: NDArray[np.uint64], key: bytes) -> bytes:
    """The hashes as stored, joined: mixed with a secret 128-bit ``key`` (a keyed
    splitmix64, 8 bytes each), so that stored values cannot be matched against hashes
    computed offline without the key."""
    return _seal(hashes, _key_words(key)).astype("<u8").tobytes()  # type: ignore[no-any-return]
