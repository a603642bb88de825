"""Every record has a name its user can give and change; jobs are named from what they do
until then, so that lists and pickers show words, not ids."""

from __future__ import annotations

import pytest


def test_jobs_are_named_after_what_they_do(client, pipeline):
    model = client.get(f"/api/v1/models/{pipeline.model_id}").json()
    set_job = client.get(f"/api/v1/jobs/{pipeline.set_job['id']}").json()
    assert set_job["name"] == f"fgsm, pgd at 8/255 on {model['name']}"
    detector = client.get(f"/api/v1/detectors/{pipeline.detector_id}").json()
    assert detector["name"] == f"detector on {set_job['name']}"
    report = client.get(f"/api/v1/jobs/{pipeline.job_ids['evaluate']}").json()
    assert report["name"] == f"report on {detector['name']}"


@pytest.mark.parametrize("kind", ["datasets", "models", "detectors", "jobs"])
def test_every_record_can_be_renamed(kind, client, pipeline):
    record_id = {
        "datasets": "bundled",
        "models": pipeline.model_id,
        "detectors": pipeline.detector_id,
        "jobs": pipeline.set_job["id"],
    }[kind]
    before = client.get(f"/api/v1/{kind}/{record_id}").json()["name"]
    try:
        answer = client.patch(f"/api/v1/{kind}/{record_id}", json={"name": "  MRI, March  "})
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == "MRI, March"  # trimmed
        assert client.get(f"/api/v1/{kind}/{record_id}").json()["name"] == "MRI, March"
        listed = client.get(f"/api/v1/{kind}").json()
        items = listed["items"] if kind == "jobs" else listed
        assert any(item["id"] == record_id and item["name"] == "MRI, March" for item in items)
        assert client.patch(f"/api/v1/{kind}/{record_id}", json={"name": " "}).status_code == 422
        assert client.patch(f"/api/v1/{kind}/{record_id}", json={}).status_code == 422
        missing = client.patch(f"/api/v1/{kind}/nothing-here", json={"name": "x"})
        assert missing.status_code == 404 and "does not exist" in missing.json()["detail"]
    finally:
        client.patch(f"/api/v1/{kind}/{record_id}", json={"name": before})
