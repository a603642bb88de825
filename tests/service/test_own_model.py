"""A network the project did not write, taken through the whole service as a new user
would: uploaded as a traced TorchScript archive with its description as JSON, then an
adversarial set, a detector, a robustness evaluation and predictions, all over HTTP with a
real worker."""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from conftest import run_job
from PIL import Image
from torch import nn

from advguard.data import load_dataset
from advguard.data.synthetic import BUNDLED_CLASS_NAMES

IMAGE_SIZE = 40
"""Neither the project's default 128 px nor the service tests' 32 px."""


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
    train = load_dataset("bundled", image_size=IMAGE_SIZE).splits["train"]
    optimiser = torch.optim.Adam(network.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        for batch in torch.randperm(len(train), generator=generator).split(64):
            loss = nn.functional.cross_entropy(network(train.images[batch]), train.labels[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return torch.jit.trace(network.eval(), torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE))


def test_an_outside_torchscript_network_goes_through_the_whole_service(client, worker):
    archive = io.BytesIO()
    torch.jit.save(outside_network(), archive)
    spec = {"class_names": BUNDLED_CLASS_NAMES, "in_channels": 1, "image_size": IMAGE_SIZE}
    answer = client.post(
        "/api/v1/models",
        files={"file": ("monai-like.pt", archive.getvalue(), "application/octet-stream")},
        data={"spec": json.dumps(spec), "name": "outside network"},
    )
    assert answer.status_code == 201, answer.text
    model = answer.json()
    assert (model["origin"], model["image_size"], model["class_names"]) == (
        "torchscript",
        IMAGE_SIZE,
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
    files = []
    for k in range(4):
        buffer = io.BytesIO()
        pixels = (test.images[k, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(buffer, format="PNG")
        files.append(("files", (f"scan-{k}.png", buffer.getvalue(), "image/png")))
    answer = client.post("/api/v1/predict", params={"detector_id": detector_id}, files=files)
    assert answer.status_code == 200, answer.text
    verdicts = answer.json()["verdicts"]
    assert len(verdicts) == 4
    for verdict in verdicts:
        assert set(verdict["class_probabilities"]) == set(BUNDLED_CLASS_NAMES)
        assert (verdict["label"] in BUNDLED_CLASS_NAMES) != verdict["is_adversarial"]
