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
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from torch import Tensor

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: invertible modulo 2**64
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


DEFAULT_FINGERPRINT = FingerprintConfig()


def _splitmix(
    values: NDArray[np.uint64], scratch: NDArray[np.uint64] | None = None
) -> NDArray[np.uint64]:
    """The splitmix64 finaliser, in place: every output bit depends on every input bit
    (``scratch``: a buffer of the same size, to allocate nothing)."""
    if scratch is None:
        scratch = np.empty_like(values)
    for shift, multiplier in ((30, _MIX_1), (27, _MIX_2), (31, None)):
        np.right_shift(values, np.uint64(shift), out=scratch)
        values ^= scratch
        if multiplier is not None:
            values *= multiplier
    return values


@functools.lru_cache(maxsize=8)
def _powers(size: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """``B^t`` for every position and ``B^−i`` for every run start (cached per image size)."""
    inverse = np.uint64(pow(int(_MULTIPLIER), -1, 2**64))
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(size, _MULTIPLIER, dtype=np.uint64), dtype=np.uint64)
        inverse_powers = np.cumprod(np.full(size, inverse, dtype=np.uint64), dtype=np.uint64)
    one = np.ones(1, dtype=np.uint64)
    return np.concatenate((one, powers[:-1])), np.concatenate((one, inverse_powers[:-1]))


def _run_hashes(levels: NDArray[np.uint8], window: int, stride: int) -> NDArray[np.uint64]:
    """Hash of the runs of ``window`` consecutive levels starting every ``stride`` pixels,
    flat runs included.

    The polynomial hash of the run starting at ``i`` is ``Σ_j levels[i+j]·B^j``; with the
    prefix sums ``P[k] = Σ_{t<k} levels[t]·B^t`` it is ``(P[i+w] − P[i])·B^−i``, so every
    run costs a few integer operations however long the window (wrapping modulo 2**64 is
    exact here: B is odd, so B^−i exists). The work buffers are kept per thread: predict
    fingerprints every image, and fresh 100 kB arrays each time cost it page faults.
    """
    count = levels.size - window + 1
    powers = _powers(levels.size)[0]
    runs = (count + stride - 1) // stride
    prefix, hashes, scratch = _buffers(levels.size, runs)
    with np.errstate(over="ignore"):
        np.multiply(levels, powers, out=prefix[1:])
        np.cumsum(prefix[1:], out=prefix[1:])
        np.subtract(prefix[window::stride], prefix[:count:stride], out=hashes)
        hashes *= _run_start_powers(levels.size, window, stride)
    return _splitmix(hashes, scratch)


@functools.lru_cache(maxsize=8)
def _run_start_powers(size: int, window: int, stride: int) -> NDArray[np.uint64]:
    """``B^−i`` for every run start, contiguous (a strided view costs a cache miss per run)."""
    return np.ascontiguousarray(_powers(size)[1][: size - window + 1 : stride])


_workspace = threading.local()


def _buffers(size: int, runs: int) -> tuple[NDArray[np.uint64], ...]:
    """This thread's prefix-sum, hash and scratch buffers for images of ``size`` pixels."""
    buffers: dict[tuple[int, int], tuple[NDArray[np.uint64], ...]]
    buffers = _workspace.__dict__.setdefault("buffers", {})
    if (size, runs) not in buffers:
        if len(buffers) >= 4:  # a few image sizes at a time
            buffers.clear()
        buffers[size, runs] = (
            np.zeros(size + 1, dtype=np.uint64),
            np.empty(runs, np.uint64),
            np.empty(runs, np.uint64),
        )
    return buffers[size, runs]


@functools.lru_cache(maxsize=8)
def _flat_hashes(window: int, levels: int) -> NDArray[np.uint64]:
    """The hash of a flat run of each level: a run is flat exactly when its hash is one of
    these (the polynomial hash of ``v, v, …, v`` does not depend on where it starts)."""
    flat = [_run_hashes(np.full(window, level, np.uint8), window, 1)[0] for level in range(levels)]
    return np.sort(np.array(flat, dtype=np.uint64))


def to_pixels(image: Tensor) -> NDArray[np.uint8]:
    """A ``C×H×W`` image in [0, 1] as its 8-bit values, flattened."""
    # numpy, not torch: torch's intra-op threads make these small ops ~8× slower
    values = image.detach().float().cpu().numpy().ravel()
    return np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def fingerprint(
    image: Tensor | NDArray[np.uint8], config: FingerprintConfig = DEFAULT_FINGERPRINT
) -> NDArray[np.uint64]:
    """The fingerprint of one ``C×H×W`` image in [0, 1] (or its :func:`to_pixels`): up to
    ``config.keep`` distinct 64-bit hashes, sorted (fewer for an image with few varied
    runs, none for a flat one)."""
    pixels = to_pixels(image) if isinstance(image, Tensor) else image
    levels = pixels // np.uint8(config.step)
    if levels.size < config.window:
        return np.empty(0, dtype=np.uint64)
    hashes = _run_hashes(levels, config.window, config.stride)
    flat = _flat_hashes(config.window, 255 // config.step + 1)
    # a partial sort first: the top few hundred of ~8k runs (flat ones dropped after it)
    shortlist = 4 * config.keep + flat.size
    if hashes.size > shortlist:
        distinct = _varied(
            np.unique(np.partition(hashes, hashes.size - shortlist)[-shortlist:]), flat
        )
        if distinct.size < config.keep:  # the shortlist held repeats of a few runs
            distinct = _varied(np.unique(hashes), flat)
    else:
        distinct = _varied(np.unique(hashes), flat)
    return distinct[-config.keep :]


def _varied(hashes: NDArray[np.uint64], flat: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """``hashes`` without the hashes of flat runs (``flat`` sorted)."""
    at = np.searchsorted(flat, hashes)
    at[at == flat.size] = 0
    return hashes[flat[at] != hashes]


def overlap(first: NDArray[np.uint64], second: NDArray[np.uint64]) -> int:
    """Hashes two fingerprints share."""
    return int(np.intersect1d(first, second, assume_unique=True).size)


def seal(hashes: NDArray[np.uint64], key: bytes) -> bytes:
    """The hashes as stored, joined: mixed with a secret 128-bit ``key`` (a keyed
    splitmix64, 8 bytes each), so that stored values cannot be matched against hashes
    computed offline without the key. Vectorised: a BLAKE2b per hash cost a tenth of a
    millisecond more per image, on predict's path."""
    if len(key) < 16:
        raise ValueError("the sealing key needs at least 16 bytes")
    before, after = np.frombuffer(key[:16], dtype=np.uint64)
    with np.errstate(over="ignore"):
        sealed = _splitmix(hashes ^ before) + after
    return sealed.astype("<u8").tobytes()
