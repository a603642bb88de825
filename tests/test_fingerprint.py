"""Query fingerprints: the same image gives the same hashes, a few grey levels of change
keep most of them, another scan shares almost none, and nothing of the image is kept."""

from __future__ import annotations

import numpy as np
import torch

from advguard.data.synthetic import make_bundled_dataset
from advguard.detection.fingerprint import (
    DEFAULT_FINGERPRINT,
    FingerprintConfig,
    fingerprint,
    overlap,
    seal,
    sealed_fingerprints,
    to_pixels,
)


def _scans() -> torch.Tensor:
    return make_bundled_dataset(image_size=128, per_class={"train": 1, "test": 3})["test"].images


def test_fingerprints_tell_near_copies_from_other_scans():
    scans = _scans()
    prints = [fingerprint(scan) for scan in scans]
    assert all(p.size == DEFAULT_FINGERPRINT.keep and np.all(np.diff(p) > 0) for p in prints)
    assert np.array_equal(fingerprint(scans[0].clone()), prints[0])
    # A Square-attack step: one 16×16 square of the image moved by 8/255.
    generator = torch.Generator().manual_seed(0)
    stepped = scans[0].clone()
    signs = torch.randint(0, 2, (16, 16), generator=generator).float() * 2 - 1
    stepped[0, 40:56, 40:56] = (stepped[0, 40:56, 40:56] + signs * 8 / 255).clamp(0, 1)
    assert overlap(fingerprint(stepped), prints[0]) >= 35
    others = [overlap(prints[0], p) for p in prints[1:]]
    assert max(others) <= 5, others


def test_flat_images_have_no_fingerprint_and_sealed_hashes_depend_on_the_key():
    assert fingerprint(torch.zeros(1, 64, 64)).size == 0
    assert fingerprint(torch.full((3, 64, 64), 0.5)).size == 0
    hashes = fingerprint(_scans()[0])
    first, second = seal(hashes, b"k" * 32), seal(hashes, b"j" * 32)
    assert len(first) == 8 * hashes.size
    chunks = {first[k : k + 8] for k in range(0, len(first), 8)}
    assert len(chunks) == hashes.size
    assert not chunks & {second[k : k + 8] for k in range(0, len(second), 8)}
    assert seal(hashes, b"k" * 32) == first


def _reference_fingerprint(pixels: np.ndarray, step: int, window: int, keep: int, stride: int):
    """The fingerprint as defined, one run at a time in Python integers."""
    mask = 2**64 - 1

    def splitmix(value: int) -> int:
        value ^= value >> 30
        value = value * 0xBF58476D1CE4E5B9 & mask
        value ^= value >> 27
        value = value * 0x94D049BB133111EB & mask
        return value ^ value >> 31

    levels = [int(value) // step for value in pixels]
    kept = set()
    for start in range(0, len(levels) - window + 1, stride):
        run = levels[start : start + window]
        if len(set(run)) > 1:  # flat runs are dropped
            kept.add(
                splitmix(
                    sum(v * pow(0x9E3779B97F4A7C15, j, 2**64) for j, v in enumerate(run)) & mask
                )
            )
    return sorted(kept)[-keep:]


def test_the_compiled_fingerprint_is_the_defined_one():
    generator = np.random.default_rng(3)
    image = generator.integers(0, 256, (2, 18, 21)).astype(np.uint8)
    image[:, :6] = 0  # a flat band: its runs must not count
    image[1, 10:, :] = 200
    pixels = image.ravel()
    for config in (
        DEFAULT_FINGERPRINT,
        FingerprintConfig(stride=1, keep=400),
        FingerprintConfig(step=8, window=5, keep=30, stride=3),
    ):
        expected = _reference_fingerprint(
            pixels, config.step, config.window, config.keep, config.stride
        )
        assert fingerprint(pixels, config).tolist() == expected
    values = torch.from_numpy(image.astype(np.float32) / 255)
    assert np.array_equal(to_pixels(values), pixels)
    key = bytes(range(32))
    [(kept_pixels, sealed)] = sealed_fingerprints(values[None], key)
    assert np.array_equal(kept_pixels, pixels)
    assert sealed.astype("<u8").tobytes() == seal(fingerprint(pixels), key)
