"""Tests for the bundled synthetic brain-MRI-like dataset."""

from __future__ import annotations

import re

import pytest
import torch

from advguard.data.dataset import ImageDataset
from advguard.data.synthetic import (
    BUNDLED_CLASS_NAMES,
    DEFAULT_PER_CLASS,
    bundled_slice_split,
    make_bundled_dataset,
)


def _small(seed: int = 0) -> dict[str, ImageDataset]:
    """A quick dataset: 64-pixel images, 6 train and 3 test images per class."""
    return make_bundled_dataset(image_size=64, per_class={"train": 6, "test": 3}, seed=seed)


@pytest.fixture(scope="module")
def bundled() -> dict[str, ImageDataset]:
    return make_bundled_dataset()


def _brightest(images: torch.Tensor, share: float = 0.002) -> torch.Tensor:
    """Mean of the brightest ``share`` of pixels, per image."""
    flat = images.flatten(1)
    count = max(1, int(flat.shape[1] * share))
    return flat.topk(count, dim=1).values.mean(dim=1)


def test_class_names_sorted_and_as_in_real_dataset() -> None:
    assert sorted(BUNDLED_CLASS_NAMES) == BUNDLED_CLASS_NAMES
    assert BUNDLED_CLASS_NAMES == ["glioma", "meningioma", "notumor", "pituitary"]


def test_shapes_dtypes_and_range(bundled: dict[str, ImageDataset]) -> None:
    assert set(bundled) == {"train", "test"}
    for split, dataset in bundled.items():
        count = 4 * DEFAULT_PER_CLASS[split]
        assert dataset.images.shape == (count, 1, 128, 128)
        assert dataset.images.dtype == torch.float32
        assert float(dataset.images.min()) >= 0.0
        assert float(dataset.images.max()) <= 1.0
        assert torch.isfinite(dataset.images).all()
        assert dataset.labels.dtype == torch.int64
        assert dataset.groups is not None
        assert dataset.groups.dtype == torch.int64
        assert dataset.groups.shape == (count,)
        assert dataset.class_names == BUNDLED_CLASS_NAMES
        assert len(dataset.files) == count
        assert len(set(dataset.files)) == count


def test_class_balance(bundled: dict[str, ImageDataset]) -> None:
    assert bundled["train"].class_counts() == dict.fromkeys(BUNDLED_CLASS_NAMES, 150)
    assert bundled["test"].class_counts() == dict.fromkeys(BUNDLED_CLASS_NAMES, 50)


def test_files_name_split_class_and_slice(bundled: dict[str, ImageDataset]) -> None:
    pattern = re.compile(r"synthetic/(train|test)/([a-z]+)/z(\d{3})_(\d{4})")
    for split, dataset in bundled.items():
        assert dataset.groups is not None
        for file, label, group in zip(
            dataset.files, dataset.labels.tolist(), dataset.groups.tolist(), strict=True
        ):
            match = pattern.fullmatch(file)
            assert match is not None, file
            assert match.group(1) == split
            assert match.group(2) == BUNDLED_CLASS_NAMES[label]
            assert int(match.group(3)) == group


def test_images_are_not_blank_or_duplicated(bundled: dict[str, ImageDataset]) -> None:
    images = bundled["train"].images
    brain_share = (images > 0.2).float().mean(dim=(1, 2, 3))
    assert float(brain_share.min()) > 0.1  # every image shows a brain section
    flat = images[:50].flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(50) * 1e9
    assert float(distances.min()) > 1.0  # augmentation makes every image different


def test_split_by_slice_without_shared_or_neighbouring_slices(
    bundled: dict[str, ImageDataset],
) -> None:
    train_groups = bundled["train"].groups
    test_groups = bundled["test"].groups
    assert train_groups is not None and test_groups is not None
    train = torch.unique(train_groups)
    test = torch.unique(test_groups)
    assert not set(train.tolist()) & set(test.tolist())
    gap = (train[:, None] - test[None, :]).abs().min()
    assert int(gap) >= 2  # no train slice next to a test slice
    split = bundled_slice_split()
    assert set(train.tolist()) <= set(split["train"])
    assert set(test.tolist()) <= set(split["test"])
    assert len(split["test"]) >= 10 and len(split["train"]) >= 2 * len(split["test"])


def test_slices_spread_over_the_brain(bundled: dict[str, ImageDataset]) -> None:
    for dataset in bundled.values():
        assert dataset.groups is not None
        for label in range(len(BUNDLED_CLASS_NAMES)):
            slices = dataset.groups[dataset.labels == label]
            assert int(slices.max() - slices.min()) > 40  # not one level of the brain


def test_lesion_classes_are_brighter_than_notumor(bundled: dict[str, ImageDataset]) -> None:
    for dataset in bundled.values():
        brightest = _brightest(dataset.images)
        no_tumour = brightest[dataset.labels == BUNDLED_CLASS_NAMES.index("notumor")]
        for name in ("glioma", "meningioma", "pituitary"):
            lesion = brightest[dataset.labels == BUNDLED_CLASS_NAMES.index(name)]
            assert float(lesion.mean() - no_tumour.mean()) > 0.07, name
            assert float((lesion > no_tumour.median()).float().mean()) > 0.75, name


def test_same_seed_same_tensors_and_different_seed_different() -> None:
    first, second, other = _small(seed=7), _small(seed=7), _small(seed=8)
    for split in ("train", "test"):
        first_groups, second_groups = first[split].groups, second[split].groups
        assert first_groups is not None and second_groups is not None
        assert torch.equal(first[split].images, second[split].images)
        assert torch.equal(first[split].labels, second[split].labels)
        assert torch.equal(first_groups, second_groups)
        assert first[split].files == second[split].files
        assert not torch.equal(first[split].images, other[split].images)


def test_first_images_do_not_depend_on_count() -> None:
    small = make_bundled_dataset(image_size=64, per_class={"train": 2, "test": 1})
    large = _small()
    for split, per_class in (("train", 2), ("test", 1)):
        for label in range(len(BUNDLED_CLASS_NAMES)):
            in_small = small[split].images[small[split].labels == label]
            in_large = large[split].images[large[split].labels == label][:per_class]
            assert torch.equal(in_small, in_large)


def test_image_size_and_per_class_options() -> None:
    datasets = make_bundled_dataset(image_size=32, per_class={"train": 2})
    assert datasets["train"].images.shape == (8, 1, 32, 32)
    assert len(datasets["test"]) == 4 * DEFAULT_PER_CLASS["test"]  # left out: default
    empty = make_bundled_dataset(image_size=32, per_class={"train": 0, "test": 1})
    assert empty["train"].images.shape == (0, 1, 32, 32)
    assert len(empty["test"]) == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_class": {"val": 3}},
        {"per_class": {"train": -1}},
        {"per_class": {"train": 2.5}},
        {"image_size": 8},
        {"seed": -1},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_bundled_dataset(**kwargs)  # type: ignore[arg-type]
