"""In-memory image datasets and leak-free splitting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from advguard.data.images import to_uint8


@dataclass
class ImageDataset:
    """Images as float32 ``N×C×H×W`` in [0, 1] with integer labels.

    ``groups`` marks images that must stay on one side of a split (slices of one volume,
    crops of one scan); ``None`` means every image is its own group.
    """

    images: Tensor
    labels: Tensor
    class_names: list[str]
    files: list[str] = field(default_factory=list)
    groups: Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(self.images.shape)}")
        if len(self.labels) != len(self.images):
            raise ValueError("images and labels differ in length")
        if not self.files:
            self.files = [f"#{i}" for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def with_channels(self, channels: int) -> ImageDataset:
        """The same grey images with their value repeated in ``channels`` channels."""
        if self.channels != 1:
            raise ValueError(f"only grey images can be repeated, these have {self.channels}")
        images = self.images.expand(-1, channels, -1, -1).contiguous()
        return replace(self, images=images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def subset(self, index: Tensor) -> ImageDataset:
        """Return the images at ``index`` (a 1-D tensor of positions) as a new dataset."""
        positions = index.tolist()
        return ImageDataset(
            images=self.images[index],
            labels=self.labels[index],
            class_names=self.class_names,
            files=[self.files[i] for i in positions],
            groups=None if self.groups is None else self.groups[index],
        )

    def sample(self, count: int | None, seed: int = 0) -> ImageDataset:
        """A reproducible random ``count`` images in their original order (all of them when
        ``count`` is ``None`` or not smaller than the dataset): an unbiased subset where the
        files are sorted by class."""
        if count is None or count >= len(self):
            return self
        if count < 1:
            raise ValueError(f"count must be ≥ 1, got {count}")
        generator = torch.Generator().manual_seed(seed)
        return self.subset(torch.randperm(len(self), generator=generator)[:count].sort().values)

    def quantised(self) -> ImageDataset:
        """The same images rounded to 8 bits, as they are when uploaded as PNG."""
        return replace(self, images=to_uint8(self.images).float() / 255.0)

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name."""
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.class_names, counts, strict=True))


def split_holdout(
    dataset: ImageDataset, fraction: float, seed: int = 0
) -> tuple[ImageDataset, ImageDataset]:
    """Split off about ``fraction`` of each class as a hold-out set, keeping groups whole.

    Returns ``(rest, holdout)``. Whole groups move together so that near-identical images
    (neighbouring slices, say) never sit on both sides.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    generator = torch.Generator().manual_seed(seed)
    groups = dataset.groups if dataset.groups is not None else torch.arange(len(dataset))
    holdout_mask = torch.zeros(len(dataset), dtype=torch.bool)
    for label in range(dataset.num_classes):
        in_class = dataset.labels == label
        class_groups = torch.unique(groups[in_class])
        order = class_groups[torch.randperm(len(class_groups), generator=generator)]
        target = round(int(in_class.sum()) * fraction)
        taken = 0
        for group in order.tolist():
            if taken >= target:
                break
            members = in_class & (groups == group)
            holdout_mask |= members
            taken += int(members.sum())
    rest = torch.nonzero(~holdout_mask).squeeze(1)
    holdout = torch.nonzero(holdout_mask).squeeze(1)
    return dataset.subset(rest), dataset.subset(holdout)
