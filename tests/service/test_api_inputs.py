"""Bad input gets a clear 4xx JSON error and leaves nothing behind; good input works."""

from __future__ import annotations

import base64
import io
import pickle
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file
from test_dicom import make_dicom
from test_volumes import brain_like, nifti

from advguard.api import create_app
from advguard.data.volumes import decode_nifti
from advguard.models import ModelSpec, build_model, export_torchscript, save_model


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of ``array``: uint8 H×W (L), uint16 H×W (I;16) or uint8 H×W×4 (RGBA)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def dataset_zip(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def small_dataset(per_class: int = 6) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    entries = {}
    for name, level in (("dark", 40), ("bright", 200)):
        for k in range(per_class):
            pixels = np.clip(rng.normal(level, 20, (40, 48)), 0, 255).astype(np.uint8)
            entries[f"scans/{name}/{k}.png"] = png_bytes(pixels)
    entries["scans/bright/broken.png"] = b"\x89PNG\r\n\x1a\n not really"
    return entries


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    return detail if isinstance(detail, str) else str(detail)


def folders(root: Path, kind: str) -> set[str]:
    folder = root / kind
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


# --- datasets ------------------------------------------------------------------------------


def test_dataset_upload_lists_counts_thumbnails_and_skipped_files(client):
    answer = client.post(
        "/api/v1/datasets",
        files={"file": ("scans.zip", dataset_zip(small_dataset()), "application/zip")},
        data={"name": "two levels"},
    )
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["class_names"] == ["bright", "dark"]
    counts = dataset["counts"]
    assert sum(sum(split.values()) for split in counts.values()) == 12
    assert [s["path"] for s in dataset["skipped"]] == ["scans/bright/broken.png"]
    thumbnail = client.get(dataset["thumbnails"][0]["url"])
    assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")
    assert dataset["id"] in [d["id"] for d in client.get("/api/v1/datasets").json()]
    assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/api/v1/datasets/{dataset['id']}").status_code == 404


def test_a_dataset_of_nifti_volumes_and_dicom_files_records_its_windows(client):
    entries = {f"lesion/case{k}.nii.gz": nifti(brain_like((16, 16, 10), seed=k)) for k in range(2)}
    rng = np.random.default_rng(0)
    for k in range(4):
        entries[f"normal/scan{k}.dcm"] = make_dicom((rng.random((24, 24)) * 4000).astype(np.uint16))
    answer = client.post(
        "/api/v1/datasets",
        files={"file": ("volumes.zip", dataset_zip(entries), "application/zip")},
        data={"slice_axis": "2"},
    )
    assert answer.status_code == 201, answer.text
    dataset = answer.json()
    assert dataset["class_names"] == ["lesion", "normal"]
    assert sum(split.get("lesion", 0) for split in dataset["counts"].values()) == 2 * 6
    assert [volume["file"] for volume in dataset["volumes"]] == [
        "lesion/case0.nii.gz",
        "lesion/case1.nii.gz",
    ]
    for volume in dataset["volumes"]:
        assert volume["axis"] == 2 and volume["slices"] == [2, 3, 4, 5, 6, 7]
        low, high = volume["window"]
        assert 0 < low < high <= 4000
    # Recorded: the same on a later read, and the volume's slices are what jobs train on.
    assert client.get(f"/api/v1/datasets/{dataset['id']}").json()["volumes"] == dataset["volumes"]
    refused = client.post(
        "/api/v1/datasets",
        files={"file": ("volumes.zip", dataset_zip(entries), "application/zip")},
        data={"slice_axis": "3"},
    )
    assert "less than or equal to 2" in error_of(refused, 422)
    assert client.delete(f"/api/v1/datasets/{dataset['id']}").status_code == 204


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (b"", 400, "empty"),
        (b"just some text, not a zip", 422, "is not a zip archive"),
        (dataset_zip({"../evil/a.png": b"x", "c/b.png": b"y"}), 422, "outside the archive"),
        (dataset_zip({"/etc/a.png": b"x"}), 422, "absolute path"),
        (dataset_zip({"a/b.png": b"x"}, links=("a/link.png",)), 422, "symbolic link"),
        (dataset_zip({"a/readme.txt": b"x"}), 422, "no images found"),
        (dataset_zip(small_dataset())[:300], 422, "is a corrupt zip archive"),
        (
            dataset_zip(
                {
                    **small_dataset(),
                    "scans/dark/photo.png": png_bytes(
                        np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
                    ),
                }
            ),
            422,
            "'upload.zip' mixes colour and grey scans: 1 colour (scans/dark/photo.png) among 12",
        ),
    ],
    ids=[
        "empty",
        "not-zip",
        "traversal",
        "absolute",
        "symlink",
        "no-images",
        "truncated",
        "colour-among-grey",
    ],
)
def test_bad_dataset_uploads_are_refused_and_leave_nothing(
    client, service_settings, payload, status, message
):
    before = folders(service_settings.data_dir, "datasets")
    answer = client.post(
        "/api/v1/datasets", files={"file": ("upload.zip", payload, "application/zip")}
    )
    assert message in error_of(answer, status)
    assert folders(service_settings.data_dir, "datasets") == before


def test_upload_limits_and_bundled_set_protection(service_settings, redis_server, tmp_path):
    tight = service_settings.model_copy(update={"max_dataset_bytes": 2000, "max_model_bytes": 2000})
    with TestClient(create_app(tight)) as client:
        answer = client.post(
            "/api/v1/datasets",
            files={"file": ("big.zip", dataset_zip(small_dataset()), "application/zip")},
        )
        assert "larger than the limit" in error_of(answer, 413)
        models_before = folders(tight.data_dir, "models")
        archive = export_torchscript(build_model(SPEC).eval(), SPEC, tmp_path / "model.pt")
        assert archive.stat().st_size > 2000
        answer = client.post("/api/v1/models", files={"file": ("model.pt", archive.read_bytes())})
        assert "larger than the limit" in error_of(answer, 413)
        assert folders(tight.data_dir, "models") == models_before
        assert "cannot be deleted" in error_of(client.delete("/api/v1/datasets/bundled"), 409)
        assert "does not exist" in error_of(client.get("/api/v1/datasets/nope"), 404)


# --- models --------------------------------------------------------------------------------


SPEC = ModelSpec(class_names=["a", "b", "c"], image_size=32, width=4, stage_convs=[1, 1])


def test_model_uploads_torchscript_and_safetensors(client, tmp_path):
    model = build_model(SPEC).eval()
    archive = export_torchscript(model, SPEC, tmp_path / "model.pt").read_bytes()
    answer = client.post("/api/v1/models", files={"file": ("model.pt", archive)})
    assert answer.status_code == 201, answer.text
    assert answer.json()["origin"] == "torchscript"
    assert answer.json()["class_names"] == ["a", "b", "c"]

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "w.st")
    weights = (tmp_path / "w.st").read_bytes()
    spec_json = (
        '{"class_names": ["a", "b", "c"], "image_size": 32, "width": 4, "stage_convs": [1, 1]}'
    )
    answer = client.post(
        "/api/v1/models", files={"file": ("w.safetensors", weights)}, data={"spec": spec_json}
    )
    assert answer.status_code == 201, answer.text
    model_id = answer.json()["id"]
    assert client.get(f"/api/v1/models/{model_id}").json()["image_size"] == 32
    assert "spec" in error_of(
        client.post("/api/v1/models", files={"file": ("w.safetensors", weights)}), 422
    )
    # The model.json that save_model writes beside the weights is a valid spec as it is.
    strided = ModelSpec(
        class_names=["a", "b", "c"], image_size=32, width=4, stage_convs=[1, 1], stem_stride=2
    )
    folder = save_model(build_model(strided), strided, tmp_path / "strided")
    answer = client.post(
        "/api/v1/models",
        files={"file": ("w.safetensors", (folder / "model.safetensors").read_bytes())},
        data={"spec": (folder / "model.json").read_text()},
    )
    assert answer.status_code == 201, answer.text
    wrong_classes = spec_json.replace('"a", "b", "c"', '"a", "b"')
    answer = client.post(
        "/api/v1/models", files={"file": ("w.safetensors", weights)}, data={"spec": wrong_classes}
    )
    assert "cannot load weights" in error_of(answer, 422)
    assert client.delete(f"/api/v1/models/{model_id}").status_code == 204
    assert client.get(f"/api/v1/models/{model_id}").status_code == 404


class Exploit:
    """Unpickling this writes a file: proof that something was unpickled."""

    marker: Path

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled!"))


def test_pickled_models_are_never_unpickled(client, service_settings, tmp_path):
    Exploit.marker = tmp_path / "pwned.txt"
    before = folders(service_settings.data_dir, "models")
    buffer = io.BytesIO()
    torch.save({"weights": Exploit()}, buffer)  # torch.save: a zip holding a pickle
    answer = client.post("/api/v1/models", files={"file": ("model.pth", buffer.getvalue())})
    assert "TorchScript" in error_of(answer, 422)
    raw = pickle.dumps(Exploit())
    assert "not a model file" in error_of(
        client.post("/api/v1/models", files={"file": ("model.pkl", raw)}), 415
    )
    assert not Exploit.marker.exists()
    assert folders(service_settings.data_dir, "models") == before


def test_bad_model_description_is_explained(client, tmp_path):
    model = build_model(SPEC).eval()
    archive = export_torchscript(model, SPEC, tmp_path / "model.pt").read_bytes()
    answer = client.post(
        "/api/v1/models",
        files={"file": ("model.pt", archive)},
        data={"spec": '{"class_names": ["x", "x"]}'},
    )
    assert "distinct" in error_of(answer, 422)
    answer = client.post(
        "/api/v1/models",
        files={"file": ("model.pt", archive)},
        data={"spec": '{"class_names": ["a", "b"], "image_size": 32}'},
    )
    assert "expected (2, 2) logits" in error_of(answer, 422)
    # A one-channel network declared as taking RGB: its first convolution refuses.
    answer = client.post(
        "/api/v1/models",
        files={"file": ("model.pt", archive)},
        data={"spec": '{"class_names": ["a", "b", "c"], "in_channels": 3, "image_size": 32}'},
    )
    assert "the model fails on a (2, 3, 32, 32) input: RuntimeError" in error_of(answer, 422)


class OneHotOfArgmax(torch.nn.Module):
    """A classifier that answers with a one-hot of its argmax: right shape, no gradient."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model(images)
        return torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float()


def test_a_model_without_an_input_gradient_is_refused(client, service_settings, tmp_path):
    before = folders(service_settings.data_dir, "models")
    model = OneHotOfArgmax(build_model(SPEC).eval())
    archive = export_torchscript(model, SPEC, tmp_path / "argmax.pt").read_bytes()
    answer = client.post("/api/v1/models", files={"file": ("argmax.pt", archive)})
    assert "no gradient with respect to its input" in error_of(answer, 422)
    assert folders(service_settings.data_dir, "models") == before


def test_onnx_uploads_are_converted_or_refused_saying_why(client, service_settings):
    pytest.importorskip("onnx")
    from onnx import helper
    from test_onnx_import import linear_graph

    spec = '{"class_names": ["a", "b", "c", "d"], "in_channels": 1, "image_size": 16}'
    before = folders(service_settings.data_dir, "models")
    good = linear_graph(size=16).SerializeToString()
    answer = client.post("/api/v1/models", files={"file": ("model.onnx", good)})
    assert "an ONNX model needs `spec`" in error_of(answer, 422)
    strange = linear_graph(
        helper.make_node("Magic", ["logits"], ["spell"], domain="com.example"),
        output="spell",
        size=16,
    )
    strange.opset_import.append(helper.make_opsetid("com.example", 1))
    answer = client.post(
        "/api/v1/models",
        files={"file": ("strange.onnx", strange.SerializeToString())},
        data={"spec": spec},
    )
    assert "cannot convert to PyTorch: com.example.Magic (opset 1)" in error_of(answer, 422)
    assert folders(service_settings.data_dir, "models") == before

    answer = client.post(
        "/api/v1/models", files={"file": ("model.onnx", good)}, data={"spec": spec}
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["origin"] == "onnx"


# --- jobs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"type": "build_adversarial_set", "model_id": "missing"},
            "model 'missing' does not exist",
        ),
        ({"type": "train_classifier", "dataset_id": "missing"}, "dataset 'missing' does not exist"),
        ({"type": "train_classifier", "epochs": 0}, "greater than or equal to 1"),
        ({"type": "build_adversarial_set", "model_id": "m", "eps": [-0.1]}, "must be 0 or more"),
        ({"type": "build_adversarial_set", "model_id": "m", "eps": [0]}, "greater than 0"),
        ({"type": "build_adversarial_set", "model_id": "m", "eps": ["8/x"]}, "not a number"),
        ({"type": "train_detector", "set_job_id": "missing"}, "job 'missing' does not exist"),
        ({"type": "evaluate", "detector_id": "missing"}, "detector 'missing' does not exist"),
        ({"type": "explode"}, "does not match any of the expected tags"),
        ({"type": "train_classifier", "surprise": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_job_requests_are_refused(client, body, message):
    before = client.get("/api/v1/jobs").json()["total"]
    assert message in error_of(client.post("/api/v1/jobs", json=body), 422)
    assert client.get("/api/v1/jobs").json()["total"] == before


def test_unknown_attack_and_class_mismatch(client, pipeline):
    body = {"type": "build_adversarial_set", "model_id": pipeline.model_id, "attacks": ["nope"]}
    assert "unknown attack 'nope'" in error_of(client.post("/api/v1/jobs", json=body), 422)
    assert "does not exist" in error_of(client.get("/api/v1/jobs/nope"), 404)
    finished = pipeline.set_job["id"]
    assert "already ended" in error_of(client.post(f"/api/v1/jobs/{finished}/cancel"), 409)


# --- predict -------------------------------------------------------------------------------


def predict(client, detector_id, files):
    return client.post("/api/v1/predict", params={"detector_id": detector_id}, files=files)


def test_predict_accepts_png_jpeg_dicom_16bit_and_rgba(client, pipeline):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 255, (50, 40), dtype=np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(gray).save(jpeg, format="JPEG")
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    sixteen = (gray.astype(np.uint16) * 257).astype(np.uint16)
    files = [
        ("files", ("a.png", png_bytes(gray), "image/png")),
        ("files", ("b.jpg", jpeg.getvalue(), "image/jpeg")),
        ("files", ("c.dcm", make_dicom(gray.astype(np.uint16) * 16), "application/dicom")),
        ("files", ("d.png", png_bytes(sixteen), "image/png")),
        ("files", ("e.png", png_bytes(rgba), "image/png")),
    ]
    answer = predict(client, pipeline.detector_id, files)
    assert answer.status_code == 200, answer.text
    verdicts = answer.json()["verdicts"]
    assert [v["file"] for v in verdicts] == ["a.png", "b.jpg", "c.dcm", "d.png", "e.png"]
    for verdict in verdicts:
        assert sum(verdict["class_probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert (verdict["label"] is None) == verdict["is_adversarial"]
    # The same pixels as 8-bit PNG, 16-bit PNG and opaque RGBA give the same answer.
    assert verdicts[0]["score"] == pytest.approx(verdicts[3]["score"], abs=1e-5)
    assert verdicts[0]["score"] == pytest.approx(verdicts[4]["score"], abs=1e-5)


def test_predict_judges_each_slice_of_a_nifti_volume(client, pipeline, service_settings):
    volume = brain_like((24, 20, 12), seed=4)  # slices 0, 1, 10, 11 of the last axis empty
    files = [
        ("files", ("head.nii.gz", nifti(volume))),
        ("files", ("a.png", png_bytes(volume[:, :, 5].astype(np.uint8)))),
    ]
    answer = predict(client, pipeline.detector_id, files)
    assert answer.status_code == 200, answer.text
    names = [verdict["file"] for verdict in answer.json()["verdicts"]]
    assert names == [f"head.nii.gz [slice {k}]" for k in range(2, 10)] + ["a.png"]
    across = client.post(
        "/api/v1/predict",
        params={"detector_id": pipeline.detector_id, "slice_axis": 0},
        files=[("files", ("head.nii", nifti(volume, compress=False)))],
    )  # no .gz and read by its content; slices across the first axis, as a dataset's
    _, made = decode_nifti(nifti(volume, compress=False), "head.nii", axis=0)
    assert [v["file"] for v in across.json()["verdicts"]] == [
        f"head.nii [slice {k}]" for k in made.slices
    ]
    flat = predict(client, pipeline.detector_id, [("files", ("x.nii.gz", nifti(volume[:, :, 4])))])
    assert "expected 3-D" in error_of(flat, 415)
    tight = service_settings.model_copy(update={"max_predict_images": 5})
    with TestClient(create_app(tight)) as small:
        answer = predict(small, pipeline.detector_id, [("files", ("head.nii.gz", nifti(volume)))])
        assert "one per non-empty slice" in error_of(answer, 413)
    answer = client.post(
        "/api/v1/attack",
        params={"detector_id": pipeline.detector_id},
        files={"file": ("head.nii.gz", nifti(volume))},
    )
    assert "attack one image" in error_of(answer, 422)


def test_predict_refuses_bad_images(client, pipeline, service_settings, redis_server):
    good = png_bytes(np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8))
    cases = [
        (b"", 400, "empty"),
        (good[: len(good) // 2], 415, "corrupt or truncated"),
        (b"%PDF-1.4 a document, not a scan", 415, "not an image this service reads"),
        (make_dicom(np.ones((32, 32)))[:300], 415, "DICOM"),
        # A DICOM whose pixel data element is renamed away: a report, not an image.
        (
            make_dicom(np.ones((4, 4))).replace(b"\xe0\x7f\x10\x00", b"\xe0\x7f\x11\x00"),
            415,
            "DICOM file has no pixel data",
        ),
    ]
    for payload, status, message in cases:
        answer = predict(client, pipeline.detector_id, [("files", ("x.png", payload, "image/png"))])
        error = error_of(answer, status)
        assert message in error and "object at 0x" not in error  # no Python repr
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")  # 400 megapixels, a few kB
    answer = predict(client, pipeline.detector_id, [("files", ("bomb.png", bomb.getvalue()))])
    assert "decompression bomb" in error_of(answer, 415)
    assert "does not exist" in error_of(predict(client, "nope", [("files", ("a.png", good))]), 404)
    assert error_of(client.post("/api/v1/predict"), 422)

    tight = service_settings.model_copy(update={"max_image_bytes": 100})
    with TestClient(create_app(tight)) as small:
        answer = predict(small, pipeline.detector_id, [("files", ("a.png", good + b"\0" * 200))])
        assert "larger than the limit" in error_of(answer, 413)


def test_predict_without_any_detector_says_what_to_do(service_settings, redis_server, tmp_path):
    empty = service_settings.model_copy(update={"data_dir": tmp_path, "database_url": ""})
    with TestClient(create_app(empty)) as client:
        good = png_bytes(np.zeros((32, 32), dtype=np.uint8))
        answer = client.post("/api/v1/predict", files=[("files", ("a.png", good))])
        assert "train one" in error_of(answer, 409)


# --- access --------------------------------------------------------------------------------


def test_api_key_guards_writes_and_optionally_reads(service_settings, redis_server, tmp_path):
    keyed = service_settings.model_copy(
        update={"data_dir": tmp_path, "database_url": "", "api_key": "s3cret"}
    )
    with TestClient(create_app(keyed)) as client:
        assert "API key" in error_of(client.post("/api/v1/jobs", json={"type": "evaluate"}), 401)
        wrong = {"X-API-Key": "guess"}
        assert error_of(client.delete("/api/v1/models/x", headers=wrong), 401)
        assert client.delete("/api/v1/models/x", headers={"X-API-Key": "s3cret"}).status_code == 404
        assert client.get("/api/v1/datasets").status_code == 200
    protected = keyed.model_copy(update={"protect_reads": True})
    with TestClient(create_app(protected)) as client:
        assert error_of(client.get("/api/v1/datasets"), 401)
        assert client.get("/api/v1/datasets", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert client.get("/api/v1/health").status_code == 200


def test_attack_one_image_and_see_the_guard_verdicts(client, pipeline):
    image = png_bytes(np.random.default_rng(3).integers(0, 255, (32, 32), dtype=np.uint8))
    answer = client.post(
        "/api/v1/attack",
        params={"detector_id": pipeline.detector_id},
        files={"file": ("scan.png", image, "image/png")},
        data={"attack": "pgd", "eps": str(8 / 255)},
    )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["params"]["eps"] == pytest.approx(8 / 255)
    assert 0 < result["linf"] <= 8 / 255 + 1e-6
    attacked = Image.open(io.BytesIO(base64.b64decode(result["adversarial_png"])))
    assert attacked.size == (32, 32)
    plain = predict(client, pipeline.detector_id, [("files", ("scan.png", image))]).json()
    assert result["original"]["score"] == pytest.approx(plain["verdicts"][0]["score"], abs=1e-5)
    bad = client.post(
        "/api/v1/attack",
        files={"file": ("scan.png", image, "image/png")},
        data={"attack": "teleport"},
    )
    assert "unknown attack 'teleport'" in error_of(bad, 422)
