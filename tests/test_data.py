"""Folder and zip import, decoding edge cases, leak-free splits, and the real MRI set."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from advguard.data import (
    DatasetImportError,
    ImageDataset,
    ImageDecodeError,
    decode_image,
    load_dataset,
    load_image_folder,
    split_holdout,
)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_folder(root, layout: dict[str, bytes]) -> None:
    for relative, data in layout.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def gray(value: int, size=(20, 30)) -> np.ndarray:
    return np.full(size, value, dtype=np.uint8)


def test_class_folders_load_with_names_and_pixels(tmp_path):
    make_folder(
        tmp_path,
        {
            "cats/a.png": png_bytes(gray(255)),
            "cats/b.jpg": jpeg_bytes(gray(0)),
            "dogs/c.png": png_bytes(np.zeros((16, 16, 3), np.uint8) + 128),
        },
    )
    folder = load_image_folder(tmp_path, image_size=16)
    data = folder.splits["all"]
    assert folder.class_names == ["cats", "dogs"]
    assert data.images.shape == (3, 1, 16, 16) and data.images.dtype == torch.float32
    assert data.labels.tolist() == [0, 0, 1]
    # Padding to square keeps the black bars; the centre keeps the pixel value.
    assert float(data.images[0, 0, 8, 8]) == pytest.approx(1.0)
    assert float(data.images[0, 0, 0, 8]) == pytest.approx(0.0)
    assert float(data.images[2].mean()) == pytest.approx(128 / 255, abs=1e-6)


def test_split_layout_and_wrapping_folder_in_zip(tmp_path):
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for split in ("train", "test"):
            for label in ("a", "b"):
                handle.writestr(f"mydata/{split}/{label}/x.png", png_bytes(gray(10)))
        handle.writestr("mydata/README.txt", "hello")
        handle.writestr("__MACOSX/mydata/train/a/._x.png", b"junk")
    folder = load_image_folder(archive, image_size=8)
    assert set(folder.splits) == {"test", "train"}
    assert len(folder.splits["train"]) == 2 and folder.class_names == ["a", "b"]
    assert [s.path for s in folder.skipped] == ["mydata/README.txt"]


def test_bad_files_are_reported_by_name_not_fatal(tmp_path):
    make_folder(
        tmp_path,
        {
            "a/good.png": png_bytes(gray(50)),
            "a/empty.png": b"",
            "a/truncated.png": png_bytes(gray(50))[:40],
            "b/fake.jpg": b"not an image at all",
            "b/good.png": png_bytes(gray(60)),
        },
    )
    folder = load_image_folder(tmp_path, image_size=8)
    reasons = {s.path: s.reason for s in folder.skipped}
    assert set(reasons) == {"a/empty.png", "a/truncated.png", "b/fake.jpg"}
    assert reasons["a/empty.png"] == "empty file"
    assert len(folder.splits["all"]) == 2


def colour(seed: int, size=(16, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def test_colour_and_grey_scans_in_one_dataset_are_refused_naming_the_rarer(tmp_path):
    """Sizes may differ (padded and resized), but a dataset is all grey or all colour: a
    grey JPEG stored in three channels is grey; two colour photos among grey scans are
    named in the error."""
    make_folder(
        tmp_path / "mixed",
        {
            "a/grey.png": png_bytes(gray(40)),
            "a/grey-as-rgb.jpg": jpeg_bytes(np.repeat(gray(90)[..., None], 3, axis=-1)),
            "a/photo.png": png_bytes(colour(1)),
            "b/grey.png": png_bytes(gray(200, (40, 12))),
            "b/photo.jpg": jpeg_bytes(colour(2)),
        },
    )
    with pytest.raises(DatasetImportError) as refused:
        load_image_folder(tmp_path / "mixed", image_size=8)
    assert str(refused.value).startswith(
        f"{tmp_path / 'mixed'} mixes colour and grey scans: 2 colour (a/photo.png, "
        "b/photo.jpg) among 3 grey."
    )
    # All colour is a dataset: kept in colour for an RGB model, made grey for a grey one.
    make_folder(
        tmp_path / "photos",
        {"a/1.png": png_bytes(colour(3)), "b/2.png": png_bytes(colour(4))},
    )
    rgb = load_image_folder(tmp_path / "photos", image_size=16, channels=3).splits["all"]
    grey = load_image_folder(tmp_path / "photos", image_size=16, channels=1).splits["all"]
    assert rgb.images.shape == (2, 3, 16, 16) and grey.images.shape == (2, 1, 16, 16)
    pil_grey = np.asarray(Image.fromarray(colour(3)).convert("L"), dtype=np.float32) / 255
    assert np.abs(grey.images[0, 0].numpy() - pil_grey).max() <= 1 / 255


@pytest.mark.parametrize("member", ["../evil.png", "/abs/evil.png", "a/../../evil.png"])
def test_zip_path_traversal_is_refused(tmp_path, member):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("a/ok.png", png_bytes(gray(1)))
        handle.writestr("b/ok.png", png_bytes(gray(1)))
        handle.writestr(member, png_bytes(gray(1)))
    with pytest.raises(DatasetImportError, match=r"absolute|outside"):
        load_image_folder(archive)


def test_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        info = zipfile.ZipInfo("a/link.png")
        info.external_attr = 0o120777 << 16
        handle.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetImportError, match="symbolic link"):
        load_image_folder(archive)


def test_not_a_dataset_errors(tmp_path):
    with pytest.raises(DatasetImportError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetImportError, match="is not a zip archive"):
        load_image_folder(tmp_path / "file.txt")
    (tmp_path / "cut.zip").write_bytes(b"PK\x03\x04" + b"\0" * 40)  # a zip's start, no end
    with pytest.raises(DatasetImportError, match="is a corrupt zip archive"):
        load_image_folder(tmp_path / "cut.zip")
    make_folder(tmp_path / "one", {"only/a.png": png_bytes(gray(3))})
    with pytest.raises(DatasetImportError, match="one class"):
        load_image_folder(tmp_path / "one")


def test_decode_16_bit_rgba_and_bomb():
    sixteen = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    image = decode_image(png_bytes(sixteen))
    assert float(image.max()) == pytest.approx(63000 / 65535, abs=1e-6)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 0  # fully transparent: composited onto black
    assert float(decode_image(png_bytes(rgba)).max()) == 0.0
    rgb = decode_image(png_bytes(np.full((4, 4, 3), 200, np.uint8)), channels=3)
    assert rgb.shape == (3, 4, 4)
    with pytest.raises(ImageDecodeError, match="over the limit"):
        decode_image(png_bytes(gray(0, (100, 100))), max_pixels=5000)


def test_split_holdout_keeps_groups_together_and_is_stratified():
    labels = torch.arange(4).repeat_interleave(50)
    groups = torch.arange(200) // 5  # five consecutive images per group
    data = ImageDataset(torch.rand(200, 1, 4, 4), labels, ["a", "b", "c", "d"], groups=groups)
    rest, holdout = split_holdout(data, 0.2, seed=1)
    assert len(rest) + len(holdout) == 200
    assert not set(rest.groups.tolist()) & set(holdout.groups.tolist())
    assert torch.bincount(holdout.labels).tolist() == [10, 10, 10, 10]


def test_real_mri_set_loads(real_mri_dir):
    folder = load_dataset("brain-mri-4class")
    assert folder.class_names == ["glioma", "meningioma", "notumor", "pituitary"]
    assert len(folder.splits["train"]) == 4075 and len(folder.splits["test"]) == 480
    assert folder.splits["test"].images.shape[1:] == (1, 128, 128)
    assert {s.path for s in folder.skipped} == {"README.md", "manifest.csv"}
