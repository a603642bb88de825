"""Every registered attack works at every entry point that takes an attack name: the CLI's
``attack``, an adversarial-set job, the live test's "attack this image" and a robustness
job. Each entry point sets an attack to a budget by the attack's own rule
(``Attack.budget_params``), so an attack that takes no step size (APGD, Square) or no
budget at all (CW, DeepFool) goes through all of them as the others do."""

from __future__ import annotations

import csv
import io
import json

import pytest
from conftest import run_job
from PIL import Image

from advguard.attacks import ATTACKS
from advguard.cli import main
from advguard.data import load_dataset, save_png

EPS = 8 / 255


@pytest.fixture(scope="module")
def model_folder(client, pipeline, service_settings):
    record = client.get(f"/api/v1/models/{pipeline.model_id}").json()
    return service_settings.data_dir / "jobs" / record["job_id"] / "model"


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Four 8-bit test scans in a folder dataset: quick for the CLI to read, and on the
    8-bit grid, so the written images stay within ε of them exactly."""
    root = tmp_path_factory.mktemp("scans")
    test = load_dataset("bundled", image_size=32).splits["test"]
    for index in range(0, len(test), len(test) // 4)[:4]:
        for split in ("train", "test"):
            folder = root / split / test.class_names[int(test.labels[index])]
            folder.mkdir(parents=True, exist_ok=True)
            save_png(test.images[index], str(folder / f"{index}.png"))
    return root


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_cli_attack_command(name, model_folder, scans, tmp_path, capsys):
    """``advguard attack``, parsed and run by the CLI's own entry point (in this process:
    a new interpreter per attack would cost more than the attacks)."""
    kind = ATTACKS[name]
    # An L∞ budget, an L2 radius for an L2-ball attack, none for a minimal-perturbation one.
    budget = [] if kind.minimal else ["--eps", "8/255" if kind.norm == "linf" else "0.25"]
    command = ["attack", "--model", str(model_folder), "--data", str(scans), "--attack", name]
    status = main([*command, *budget, "--limit", "4", "--out", str(tmp_path)])
    assert status == 0, capsys.readouterr().err
    assert "wrote 4 PNG files" in capsys.readouterr().out
    with (tmp_path / "manifest.csv").open() as manifest:
        rows = list(csv.DictReader(manifest))
    assert [row["attack"] for row in rows] == [name] * 4
    if kind.norm == "linf":
        assert max(float(row["linf"]) for row in rows) <= EPS + 1e-6
    elif not kind.minimal:
        assert all(json.loads(row["params"])["eps"] == 0.25 for row in rows)


def test_an_adversarial_set_job_with_every_attack(client, pipeline):
    """One set job with the whole registry (one job per attack would cost its start each
    time): every attack leaves its rows, L∞ ones within the budget."""
    job = run_job(
        client,
        {
            "type": "build_adversarial_set",
            "model_id": pipeline.model_id,
            "attacks": sorted(ATTACKS),
            "eps": [EPS],
            "fraction": 0.02,
        },
    )
    assert sorted(job["result"]["attack_names"]) == sorted(ATTACKS)
    rows = {row["attack"]: row for row in job["result"]["robustness"]}
    assert sorted(rows) == sorted(ATTACKS)
    for name, row in rows.items():
        assert 0 <= row["adversarial_accuracy"] <= 1 and 0 <= row["clean_accuracy"] <= 1, name
        if ATTACKS[name].norm == "linf":
            assert row["eps"] == pytest.approx(EPS) and row["max_linf"] <= EPS + 1e-6, name


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_live_test_endpoint(name, client, pipeline):
    image = load_dataset("bundled", image_size=32).splits["test"].images[0, 0]
    buffer = io.BytesIO()
    Image.fromarray((image.numpy() * 255).round().astype("uint8")).save(buffer, format="PNG")
    answer = client.post(
        "/api/v1/attack",
        params={"detector_id": pipeline.detector_id},
        files={"file": ("scan.png", buffer.getvalue(), "image/png")},
        data={"attack": name, "eps": "8"},  # a bare 8 is 8/255, as in every budget field
    )
    assert answer.status_code == 200, answer.text
    outcome = answer.json()
    assert outcome["attack"] == name
    if ATTACKS[name].norm == "linf":
        assert outcome["params"]["eps"] == pytest.approx(EPS)
        assert outcome["linf"] <= EPS + 1e-6


def test_a_robustness_job_with_every_attack(client, pipeline):
    result = run_job(
        client,
        {
            "type": "evaluate_robustness",
            "model_id": pipeline.model_id,
            "attacks": sorted(ATTACKS),
            "eps": [0, EPS],
            "limit": 4,
        },
    )["result"]["robustness"]
    # Every attack on the L∞ grid but the L2-ball ones, which are on the L2 grid (both for
    # the minimal-perturbation attacks: CW, DeepFool, HopSkipJump).
    assert result["l2_epsilons"] == [0, 0.25, 0.5, 1]  # the default L2 grid
    for norm, budgets in (("linf", [0, EPS]), ("l2", result["l2_epsilons"])):
        curves = {c["attack"]: c["accuracy"] for c in result["curves"] if c["norm"] == norm}
        expected = [name for name, kind in ATTACKS.items() if kind.minimal or kind.norm == norm]
        assert sorted(curves) == sorted(expected), norm
        for name, accuracy in curves.items():
            assert len(accuracy) == len(budgets), name
            assert all(0 <= attacked <= accuracy[0] <= 1 for attacked in accuracy), name
