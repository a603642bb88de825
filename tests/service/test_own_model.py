"""Networks the project did not write, taken through the whole service as a new user
would: uploaded with their description as JSON (a plain traced TorchScript network, and a
MONAI ResNet as traced TorchScript, as ONNX, and as ONNX taking RGB), then an adversarial
set, a detector, a robustness evaluation, predictions and the live test's attack, all over
HTTP with a real worker."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_job
from exported_guard import run_without_advguard
from PIL import Image
from torch import nn

from advguard.data import load_dataset
from advguard.data.synthetic import BUNDLED_CLASS_NAMES

IMAGE_SIZE = 40
"""Neither the project's default 128 px nor the service tests' 32 px."""


def _train_briefly(network: nn.Module, channels: int, epochs: int = 10) -> nn.Module:
    """A few epochs on the bundled training images (grey repeated for RGB), then eval."""
    train = load_dataset("bundled", image_size=IMAGE_SIZE, channels=channels).splits["train"]
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    network.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            loss = nn.functional.cross_entropy(network(train.images[batch]), train.labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return network.eval()


def outside_network() -> torch.jit.ScriptModule:
    """Plain ``torch.nn`` layers (no project code, no normalisation module), trained
    briefly on the bundled images and traced: the archive embeds no description."""
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(1, 12, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(12, 24, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(24, len(BUNDLED_CLASS_NAMES)),
    )
    _train_briefly(network, 1)
    return torch.jit.trace(network, torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE))


def monai_network(channels: int) -> nn.Module:
    """A small 2-D MONAI ResNet (batch norm, residual blocks), trained briefly."""
    from monai.networks.nets import ResNet

    torch.manual_seed(0)
    network = ResNet(
        block="basic",
        layers=[1, 1, 1, 1],
        block_inplanes=[8, 16, 32, 64],
        spatial_dims=2,
        n_input_channels=channels,
        conv1_t_size=3,
        conv1_t_stride=1,
        num_classes=len(BUNDLED_CLASS_NAMES),
    )
    return _train_briefly(network, channels, epochs=4)


def onnx_bytes(network: nn.Module, channels: int) -> bytes:
    """The network exported to ONNX with a dynamic batch axis, as a deployment would."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated
        torch.onnx.export(
            network,
            (torch.rand(2, channels, IMAGE_SIZE, IMAGE_SIZE),),
            buffer,
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
    return buffer.getvalue()


def torchscript_bytes(network: nn.Module, channels: int) -> bytes:
    archive = io.BytesIO()
    torch.jit.save(
        torch.jit.trace(network, torch.rand(1, channels, IMAGE_SIZE, IMAGE_SIZE)), archive
    )
    return archive.getvalue()


def test_an_outside_torchscript_network_goes_through_the_whole_service(client, worker, tmp_path):
    archive = io.BytesIO()
    torch.jit.save(outside_network(), archive)
    through_the_service(
        client, archive.getvalue(), "outside.pt", "torchscript", channels=1, work=tmp_path
    )


@pytest.mark.parametrize(("form", "channels"), [("torchscript", 1), ("onnx", 1), ("onnx", 3)])
def test_a_monai_network_goes_through_the_whole_service(client, worker, form, channels, tmp_path):
    pytest.importorskip("monai")
    network = monai_network(channels)
    data = (onnx_bytes if form == "onnx" else torchscript_bytes)(network, channels)
    scans, verdicts = through_the_service(
        client, data, f"resnet.{form}", form, channels, work=tmp_path
    )
    # What the service's classifier answered is what the network itself computes.
    with torch.no_grad():
        expected = network(scans.expand(-1, channels, -1, -1)).softmax(1)
    answered = torch.tensor(
        [[v["class_probabilities"][name] for name in BUNDLED_CLASS_NAMES] for v in verdicts]
    )
    assert torch.allclose(answered, expected, atol=1e-4), (answered, expected)


def through_the_service(
    client, data: bytes, filename: str, origin: str, channels: int, work: Path
) -> tuple[torch.Tensor, list[dict]]:
    """Upload the model, then set, detector, robustness, predict, the guard exported and
    run without advguard, and the live test's attack, over HTTP; return the grey scans sent
    to predict and its verdicts."""
    spec = {"class_names": BUNDLED_CLASS_NAMES, "in_channels": channels, "image_size": IMAGE_SIZE}
    answer = client.post(
        "/api/v1/models",
        files={"file": (filename, data, "application/octet-stream")},
        data={"spec": json.dumps(spec), "name": filename},
    )
    assert answer.status_code == 201, answer.text
    model = answer.json()
    assert (model["origin"], model["image_size"], model["channels"], model["class_names"]) == (
        origin,
        IMAGE_SIZE,
        channels,
        BUNDLED_CLASS_NAMES,
    )

    built = run_job(
        client,
        {
            "type": "build_adversarial_set",
            "model_id": model["id"],
            "attacks": ["fgsm", "pgd"],
            "eps": [8 / 255],
            "fraction": 0.1,
        },
    )
    trained = run_job(client, {"type": "train_detector", "set_job_id": built["id"], "epochs": 30})
    detector_id = trained["result"]["detector_id"]
    detector = client.get(f"/api/v1/detectors/{detector_id}").json()
    assert detector["attack_names"] == ["fgsm", "pgd"]

    robustness = run_job(
        client,
        {
            "type": "evaluate_robustness",
            "model_id": model["id"],
            "attacks": ["fgsm", "pgd"],
            "eps": [0, 8 / 255],
            "limit": 16,
            "detector_id": detector_id,
            "adaptive_steps": 5,
        },
    )["result"]
    clean, attacked = robustness["robustness"]["worst_case"]["none"]
    assert clean > 0.25 and 0 <= attacked <= clean  # better than chance
    assert [s["name"] for s in robustness["adaptive"]["settings"]][:2] == [
        "classifier",
        "classifier + detector",
    ]

    test = load_dataset("bundled", image_size=IMAGE_SIZE).splits["test"]
    files, scans = [], []
    for k in range(4):
        buffer = io.BytesIO()
        pixels = (test.images[k, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        files.append(("files", (f"scan-{k}.png", buffer.getvalue(), "image/png")))
        scans.append(torch.from_numpy(pixels.astype(np.float32) / 255)[None])
    answer = client.post("/api/v1/predict", params={"detector_id": detector_id}, files=files)
    assert answer.status_code == 200, answer.text
    verdicts = answer.json()["verdicts"]
    assert len(verdicts) == 4
    for verdict in verdicts:
        assert set(verdict["class_probabilities"]) == set(BUNDLED_CLASS_NAMES)
        assert (verdict["label"] in BUNDLED_CLASS_NAMES) != verdict["is_adversarial"]

    # Taken home: the exported guard, run without advguard, answers what predict answered.
    exported = work / "guard.pt"
    exported.write_bytes(client.get(f"/api/v1/detectors/{detector_id}/export").content)
    grey = torch.stack(scans)
    outputs, _ = run_without_advguard(
        exported, grey.expand(-1, channels, -1, -1).contiguous(), len(scans), work / "run"
    )
    for k, verdict in enumerate(verdicts):
        served = torch.tensor([verdict["class_probabilities"][c] for c in BUNDLED_CLASS_NAMES])
        assert torch.allclose(outputs["class_probabilities"][k], served, atol=1e-4)
        assert abs(float(outputs["score"][k]) - verdict["score"]) <= 1e-4
        assert bool(outputs["is_adversarial"][k]) == verdict["is_adversarial"]

    # The live test: one scan attacked against the guard's classifier, both verdicts shown.
    answer = client.post(
        "/api/v1/attack",
        params={"detector_id": detector_id},
        files={"file": files[0][1]},
        data={"attack": "pgd", "eps": "8"},
    )
    assert answer.status_code == 200, answer.text
    attacked = answer.json()
    assert attacked["linf"] <= 8 / 255 + 1e-6 and attacked["l2"] > 0
    assert set(attacked["adversarial"]["class_probabilities"]) == set(BUNDLED_CLASS_NAMES)
    return grey, verdicts
