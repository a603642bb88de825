"""The appearance ranges a guard keeps: scans like its training ones pass, blank, noisy or
inverted pictures are named with the measure that gives them away."""

from __future__ import annotations

import pytest
import torch

from advguard.data import load_dataset
from advguard.data.appearance import MEASURES, AppearanceRange


def strange_images(like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Pictures that are not scans, shaped like ``like`` (N×C×H×W in [0, 1])."""
    generator = torch.Generator().manual_seed(0)
    return {
        "blank grey": torch.full_like(like, 0.5),
        "black": torch.zeros_like(like),
        "white": torch.ones_like(like),
        "uniform noise": torch.rand(like.shape, generator=generator),
        "ramp": torch.linspace(0, 1, like.shape[-1]).expand_as(like).clone(),
        "inverted": 1 - like,
        "half contrast": like * 0.5 + 0.25,
    }


def test_scans_like_the_training_ones_pass_and_strange_pictures_do_not(small_bundled):
    appearance = AppearanceRange.fit(small_bundled["train"].images)
    assert set(appearance.ranges) == set(MEASURES)
    test = small_bundled["test"].images
    unlike = appearance.differences(test)
    assert sum(bool(found) for found in unlike) <= 0.02 * len(test)
    for name, images in strange_images(test[:16]).items():
        found = appearance.differences(images)
        assert all(found), f"{name}: {found}"
    grey = appearance.differences(torch.full_like(test[:1], 0.5))[0]
    assert any(line.startswith("contrast 0.000 (training scans ") for line in grey), grey
    # uint8 and float images of the same pixels measure the same.
    as_uint8 = (test[:8] * 255).round().to(torch.uint8)
    assert appearance.differences(as_uint8) == appearance.differences(as_uint8.float() / 255)


def test_ranges_survive_a_save_and_bad_files_are_refused(small_bundled, tmp_path):
    appearance = AppearanceRange.fit(small_bundled["train"].images)
    appearance.save(tmp_path / "appearance.json")
    assert AppearanceRange.load(tmp_path / "appearance.json") == appearance
    (tmp_path / "bad.json").write_text('{"ranges": {"colourfulness": [0, 1]}}')
    with pytest.raises(ValueError, match="unknown measures"):
        AppearanceRange.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(ValueError, match="not an appearance range"):
        AppearanceRange.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="at least two"):
        AppearanceRange.fit(small_bundled["train"].images[:1])


def test_real_test_scans_look_like_the_training_scans(real_mri_dir):
    """The README's numbers: on brain-mri-4class no clean test scan is called unlike the
    training scans, and every picture that is not a scan is."""
    splits = load_dataset("brain-mri-4class").splits
    appearance = AppearanceRange.fit(splits["train"].images)
    test = splits["test"].images
    assert sum(bool(found) for found in appearance.differences(test)) == 0
    for name, images in strange_images(test[:32]).items():
        assert all(appearance.differences(images)), name
    # Attack-sized perturbations are the detector's business, not this check's.
    signs = torch.randn(test[:32].shape, generator=torch.Generator().manual_seed(1)).sign()
    for eps in (2 / 255, 8 / 255):
        assert not any(appearance.differences((test[:32] + eps * signs).clamp(0, 1)))
