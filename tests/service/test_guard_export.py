"""``GET /detectors/{id}/export``: the served guard as one TorchScript file that gives, in
a clean interpreter without advguard, what ``POST /predict`` answers."""

from __future__ import annotations

import io

import torch
from exported_guard import run_without_advguard
from PIL import Image

from advguard.data import load_dataset, to_uint8

TOLERANCE = 1e-4


def _png(image: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(image).squeeze(0).numpy()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_exported_detector_answers_what_predict_answers(client, pipeline, tmp_path):
    answer = client.get(f"/api/v1/detectors/{pipeline.detector_id}/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    assert f"advguard-guard-{pipeline.detector_id}.pt" in answer.headers["content-disposition"]
    exported = tmp_path / "guard.pt"
    exported.write_bytes(answer.content)
    # asked again: the same file, made once
    assert client.get(f"/api/v1/detectors/{pipeline.detector_id}/export").content == answer.content

    test = load_dataset("bundled", image_size=32).splits["test"].quantised()
    # One image per request, as the service computes a lone request: batches of one.
    outputs, metadata = run_without_advguard(exported, test.images, 1, tmp_path / "run")
    for k, image in enumerate(test.images):
        verdict = client.post(
            "/api/v1/predict",
            params={"detector_id": pipeline.detector_id},
            files=[("files", ("scan.png", _png(image), "image/png"))],
        ).json()["verdicts"][0]
        served = {
            "class_probabilities": list(verdict["class_probabilities"].values()),
            "score": verdict["score"],
            "attack_probabilities": list(verdict["attack_probabilities"].values()),
        }
        for name, value in served.items():
            difference = (outputs[name][k] - torch.tensor(value)).abs().max().item()
            assert difference <= TOLERANCE, (k, name, difference)
        assert bool(outputs["is_adversarial"][k]) == verdict["is_adversarial"]
        assert list(verdict["class_probabilities"]) == metadata["class_names"]
        assert list(verdict["attack_probabilities"]) == metadata["attack_names"]


def test_exporting_an_unknown_detector_is_a_404(client):
    answer = client.get("/api/v1/detectors/nope/export")
    assert answer.status_code == 404 and "nope" in answer.json()["detail"]
