"""Progress a user can trust: every job type's progress, as a client polling the API sees
it, never goes back, and the long stages move while they run (not 0 % then 100 %)."""

from __future__ import annotations

import pytest
from conftest import PROGRESS_SEEN, run_job

from advguard.jobs import JOB_KINDS


@pytest.fixture(scope="module")
def every_job(client, pipeline) -> dict[str, str]:
    """One job of each type, run on the real worker: the pipeline's four, then a robustness
    evaluation behind the detector, a short adversarial training and a small report."""
    robustness = run_job(
        client,
        {
            "type": "evaluate_robustness",
            "model_id": pipeline.model_id,
            "attacks": ["fgsm", "pgd"],
            "eps": ["0", "8/255"],
            "limit": 24,
            "detector_id": pipeline.detector_id,
            "adaptive_steps": 10,
        },
    )
    training = run_job(
        client,
        {
            "type": "adversarial_training",
            "model_id": pipeline.model_id,
            "epochs": 2,
            "evaluation_limit": 24,
        },
    )
    report = run_job(
        client,
        {
            "type": "model_report",
            "model_id": pipeline.model_id,
            "detector_id": pipeline.detector_id,
            "attacks": ["fgsm"],
            "eps": ["0", "8/255"],
            "defenses": ["jpeg"],
            "limit": 8,
            "adaptive_steps": 3,
            "unseen_attacks": ["deepfool"],
        },
    )
    return {
        **pipeline.job_ids,
        robustness["type"]: robustness["id"],
        training["type"]: training["id"],
        report["type"]: report["id"],
    }


def test_every_job_type_was_followed(every_job):
    assert sorted(every_job) == sorted(JOB_KINDS)


@pytest.mark.parametrize("job_type", sorted(JOB_KINDS))
def test_progress_never_goes_back_and_names_its_stages(job_type, every_job):
    seen = PROGRESS_SEEN[every_job[job_type]]
    overall = [progress["overall"] for progress in seen]
    trail = [(p["stage_number"], p["stage"], p["done"], p["total"]) for p in seen]
    assert overall == sorted(overall), "\n".join(map(str, trail))
    assert seen[-1]["overall"] == 1.0
    count = len(JOB_KINDS[job_type].stages)
    for progress in seen:
        assert progress["stage_count"] == count
        if progress["stage"]:
            stage = JOB_KINDS[job_type].stages[progress["stage_number"] - 1]
            assert progress["stage"].startswith(stage), progress
        assert 0 <= progress["done"] <= max(progress["total"], 1)


@pytest.mark.parametrize("job_type", ["train_classifier", "build_adversarial_set"])
def test_the_long_stage_moves_while_it_runs(job_type, every_job):
    """Training (epochs) and attacking (images, across the set's chunks) report as they
    go: a poll in the middle sees some done and some still to do."""
    seen = PROGRESS_SEEN[every_job[job_type]]
    between = {p["done"] for p in seen if p["stage_number"] == 1 and 0 < p["done"] < p["total"]}
    assert between, seen
