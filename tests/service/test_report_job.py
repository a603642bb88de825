"""The handover report as a job on the real worker: one HTML file, downloaded through the
API, that renders in Chromium with the network cut off (every figure drawn) and prints to
PDF."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_job

from advguard.evaluation.html_report import FIGURES

CHROMIUM = Path("/usr/bin/chromium")


def test_report_job_rejects_an_unseen_attack_the_detector_trained_on(client, pipeline):
    answer = client.post(
        "/api/v1/jobs",
        json={
            "type": "model_report",
            "model_id": pipeline.model_id,
            "detector_id": pipeline.detector_id,
            "unseen_attacks": ["pgd"],
        },
    )
    assert answer.status_code == 422, answer.text
    assert "pgd" in answer.text and "trained on" in answer.text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_report_job_gives_one_file_that_renders_offline_and_prints(client, pipeline, tmp_path):
    from playwright.sync_api import sync_playwright

    job = run_job(
        client,
        {
            "type": "model_report",
            "model_id": pipeline.model_id,
            "detector_id": pipeline.detector_id,
            "limit": 12,
            "attacks": ["fgsm", "autoattack"],
            "eps": [0, 8 / 255],
            "defenses": ["jpeg"],
            "adaptive_steps": 3,
            "unseen_attacks": ["deepfool"],
        },
    )
    assert job["progress"]["stage_number"] == job["progress"]["stage_count"] == 5
    result = job["result"]
    assert result["clean_accuracy"] == result["robustness"]["clean_accuracy"]["none"]
    assert result["adaptive"] is not None
    answer = client.get(job["artifacts"]["report"])
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "attachment" in answer.headers["content-disposition"]  # a download
    report = tmp_path / "report.html"
    report.write_bytes(answer.content)

    fetched: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        # Offline: anything but the file itself and its inline data fails, and is recorded.
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(("file:", "data:"))
                else (fetched.append(route.request.url), route.abort())
            ),
        )
        page.goto(report.as_uri())
        drawn = page.eval_on_selector_all(
            "figure img",
            "images => images.map(image => [image.closest('figure').dataset.figure,"
            " image.complete && image.naturalWidth > 0])",
        )
        title = page.title()
        pdf = page.pdf(format="A4")
        browser.close()
    assert fetched == []
    assert {key for key, _ in drawn} == set(FIGURES) and all(ok for _, ok in drawn)
    assert title.startswith("Robustness report: ")
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 3
