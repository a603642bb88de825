"""The advguard command run as a real process on real files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import BaseModel
from safetensors.torch import load_file

from advguard.config import Settings
from advguard.data import save_png
from advguard.jobs import (
    JOB_KINDS,
    EvaluateRobustnessParams,
    JobContext,
    TrainClassifierParams,
)
from advguard.models import TrainConfig
from advguard.storage import DatasetRecord, JobRecord, ModelRecord, Storage


def advguard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ADVGUARD_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "advguard.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def folder_dataset(small_bundled, tmp_path_factory) -> Path:
    """A small folder-per-class dataset on disk, written from the bundled set."""
    root = tmp_path_factory.mktemp("dataset")
    for split, data in small_bundled.items():
        for index in range(0, len(data), 3):
            name = data.class_names[int(data.labels[index])]
            target = root / split / name
            target.mkdir(parents=True, exist_ok=True)
            save_png(data.images[index], str(target / f"{index}.png"))
    return root


@pytest.fixture(scope="module")
def trained_model_dir(folder_dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train")
    result = advguard(
        "train",
        "--data",
        str(folder_dataset),
        "--image-size",
        "32",
        "--epochs",
        "3",
        "--torchscript",
        "--out",
        str(out),
        cwd=out,
    )
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    return out


def test_train_writes_model_metrics_and_torchscript(trained_model_dir):
    model = trained_model_dir / "model"
    metrics = json.loads((model / "metrics.json").read_text())
    assert {"model.json", "model.safetensors", "metrics.json"} <= {p.name for p in model.iterdir()}
    assert (trained_model_dir / "model.pt").stat().st_size > 0
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (4, 4)
    assert metrics["test_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())


def attack_rows(model: Path, data: Path, out: Path, *options: str) -> list[dict[str, str]]:
    """Run ``advguard attack`` and return the rows of the manifest it wrote."""
    result = advguard(
        "attack",
        "--model",
        str(model),
        "--data",
        str(data),
        *options,
        "--out",
        str(out),
        cwd=out.parent,
    )
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader((out / "manifest.csv").open()))


@pytest.mark.parametrize("model_path", ["model", "model.pt"])
def test_attack_writes_pngs_and_manifest(trained_model_dir, folder_dataset, tmp_path, model_path):
    out = tmp_path / "adv"
    rows = attack_rows(
        trained_model_dir / model_path,
        folder_dataset,
        out,
        "--attack",
        "pgd",
        "--eps",
        "8/255",
        "--param",
        "steps=5",
        "--limit",
        "12",
    )
    assert len(rows) == 12
    assert set(rows[0]) >= {
        "file",
        "source_file",
        "true_label",
        "attack",
        "params",
        "predicted_before",
        "predicted_after",
        "success",
        "linf",
        "l2",
    }
    for row in rows:
        image = np.asarray(Image.open(out / row["file"]))
        source = np.asarray(Image.open(folder_dataset / row["source_file"]))
        linf = np.abs(image.astype(int) - source.astype(int)).max() / 255
        assert linf == pytest.approx(float(row["linf"]), abs=1e-6)
        assert linf <= 8 / 255 + 1e-6
        assert json.loads(row["params"])["steps"] == 5
        assert row["success"] == str(row["predicted_after"] != row["true_label"])


def test_targeted_attack_uses_the_named_class(trained_model_dir, folder_dataset, tmp_path):
    rows = attack_rows(
        trained_model_dir / "model",
        folder_dataset,
        tmp_path / "adv",
        "--attack",
        "fgsm",
        "--targeted",
        "--target-class",
        "notumor",
        "--limit",
        "6",
    )
    assert {row["target_label"] for row in rows} == {"notumor"}
    assert all(row["success"] == str(row["predicted_after"] == "notumor") for row in rows)


REFUSALS = [
    (["attack", "--model", "nowhere", "--attack", "pgd", "--out", "x"], "does not exist"),
    (["attack", "--model", "MODEL", "--attack", "pgd", "--eps", "-0.1", "--out", "x"], "budget '-0.1' must be 0 or more"),
    (["attack", "--model", "MODEL", "--attack", "pgd", "--param", "nonsense=1", "--out", "x"], "bad parameter for pgd"),
    (["attack", "--model", "MODEL", "--attack", "pgd", "--eps", "abc", "--out", "x"], "not a number"),
    (["attack", "--model", "MODEL", "--attack", "cw", "--eps", "0.5", "--out", "x"], "cw is a minimal-perturbation attack"),
    (["attack", "--model", "MODEL", "--attack", "pgd-l2", "--eps", "-1", "--out", "x"], "an L2 budget must be between 0 and 100"),
    (["robustness", "--model", "MODEL", "--l2-eps", "0,5e3", "--out", "x"], "an L2 budget must be between 0 and 100"),
    (["robustness", "--model", "MODEL", "--attacks", "pgd,zap", "--out", "r"], "unknown attack(s) zap"),
    (["robustness", "--model", "MODEL", "--eps", "300", "--out", "r"], "more than the whole pixel range"),
    (["robustness", "--model", "MODEL", "--defenses", "blur", "--out", "r"], "unknown defense 'blur'"),
    (["train", "--data", "/no/such/folder"], "does not exist"),
    (["build-set", "--model", "MODEL", "--attacks", "fgsm,zap", "--out", "x"], "unknown attack"),
    (["build-set", "--model", "MODEL", "--fraction", "0", "--out", "x"], "fraction must be"),
    (["train-detector", "--model", "MODEL", "--set", "nowhere", "--guard", "g"], "not an adversarial set"),
    (["evaluate", "--guard", "nowhere", "--set", "nowhere", "--out", "r"], "does not exist"),
]  # fmt: skip
"""Bad command lines (``MODEL``: a trained model) and what the one-line error must say."""


@pytest.fixture(scope="module")
def refused(trained_model_dir, tmp_path_factory) -> list[subprocess.CompletedProcess[str]]:
    """Every command line of :data:`REFUSALS` run, each in its own folder, as many at once
    as there are cores: each is a fresh process that imports torch before it can refuse."""
    model = str(trained_model_dir / "model")
    runs = [
        ([model if arg == "MODEL" else arg for arg in args], tmp_path_factory.mktemp("refused"))
        for args, _ in REFUSALS
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda run: advguard(*run[0], cwd=run[1]), runs))


@pytest.mark.parametrize(
    "case", range(len(REFUSALS)), ids=[f"{args[0]}: {message}" for args, message in REFUSALS]
)
def test_bad_input_is_refused_in_one_line_without_traceback(case, refused):
    message, result = REFUSALS[case][1], refused[case]
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_build_set_train_detector_evaluate(trained_model_dir, folder_dataset, tmp_path):
    """The detection pipeline as three commands on files: set → guard → report."""
    model = str(trained_model_dir / "model")
    adversarial, guard, report = tmp_path / "set", tmp_path / "guard", tmp_path / "report"
    steps = [
        ["build-set", "--model", model, "--data", str(folder_dataset), "--attacks", "fgsm,pgd",
         "--eps", "4/255,8/255", "--fraction", "0.5", "--zip", "--out", str(adversarial)],
        ["train-detector", "--model", model, "--set", str(adversarial), "--guard", str(guard)],
        ["evaluate", "--guard", str(guard), "--set", str(adversarial), "--out", str(report),
         "--skip-leave-one-out"],
        ["adaptive", "--guard", str(guard), "--robust-model", model, "--data",
         str(folder_dataset), "--eps", "4/255", "--steps", "2", "--limit", "12", "--out",
         str(report / "adaptive")],
    ]  # fmt: skip
    for args in steps:
        result = advguard(*args, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    assert "| pgd | 8/255 |" in (report / "report.md").read_text()
    rows = list(csv.DictReader((adversarial / "manifest.csv").open()))
    kinds = {"clean", "noise_rician", "noise_gaussian", "augmented", "fgsm", "pgd"}
    assert {r["attack"] for r in rows} == kinds
    # The detector learns on the training images the classifier never trained on.
    held_out = json.loads((trained_model_dir / "model" / "holdout.json").read_text())["files"]
    assert {r["source_file"] for r in rows if r["split"] == "train"} == set(held_out)
    info = json.loads((adversarial / "build.json").read_text())
    assert info["detector_images"].endswith("held out from the classifier")
    assert (tmp_path / "set.zip").stat().st_size > 0
    data = json.loads((report / "report.json").read_text())
    assert [(r["attack"], r["eps"]) for r in data["rows"]] == [
        ("fgsm", "4/255"),
        ("fgsm", "8/255"),
        ("pgd", "4/255"),
        ("pgd", "8/255"),
    ]
    assert 0 <= data["clean_false_rejection"] <= 1
    assert (guard / "detector" / "detector.json").exists()
    assert (guard / "classifier" / "model.safetensors").exists()
    adaptive = json.loads((report / "adaptive" / "adaptive.json").read_text())["rows"]
    assert [row["setting"] for row in adaptive] == [
        f"{name}{setting}"
        for name in ("standard", trained_model_dir.name)
        for setting in ("", " + detector, non-adaptive", " + detector, adaptive")
    ]
    for row in adaptive:
        assert row["images"] == 12 and row["eps"] == pytest.approx(4 / 255)
        assert 0 <= row["protected_accuracy"] <= 1
    assert adaptive[0]["rejection_rate"] == 0  # no detector, nothing rejected
    assert (report / "adaptive" / "adaptive.png").stat().st_size > 0


def test_robustness_command_writes_curves(trained_model_dir, folder_dataset, tmp_path):
    out = tmp_path / "robustness"
    result = advguard(
        "robustness", "--model", str(trained_model_dir / "model"), "--data", str(folder_dataset),
        "--attacks", "fgsm,pgd", "--eps", "0,4/255", "--defenses", "median", "--limit", "20",
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "robustness measured on 20 images" in result.stdout
    data = json.loads((out / "robustness.json").read_text())
    assert data["defenses"] == ["none", "median", "median + BPDA"]
    assert data["images"] == 20
    assert [len(curve["accuracy"]) for curve in data["curves"]] == [2] * 6
    assert (out / "robustness.png").stat().st_size > 0


def test_demo_runs_the_whole_pipeline_on_a_folder(folder_dataset, tmp_path):
    """`advguard demo --data PATH`, shrunk to seconds: every stage leaves its report, and the
    detection report links the robustness ones."""
    out = tmp_path / "demo"
    result = advguard(
        "demo", "--data", str(folder_dataset), "--image-size", "32", "--epochs", "3",
        "--attacks", "fgsm,pgd", "--eps", "8/255", "--fraction", "0.3", "--skip-baselines",
        "--skip-leave-one-out", "--unseen-attacks", "", "--robustness-images", "6",
        "--adversarial-epochs", "1", "--adaptive-images", "4", "--adaptive-steps", "10",
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "demo took" in result.stdout
    assert (out / "guard" / "detector" / "detector.json").exists()
    report = (out / "report" / "report.md").read_text()
    for path in (
        "robustness/robustness.md",
        "defenses/robustness.md",
        "adversarial-training/comparison.md",
        "adaptive/adaptive.md",
    ):
        assert (out / "report" / path).exists(), path
        assert f"]({path})" in report
    defenses = json.loads((out / "report" / "defenses" / "robustness.json").read_text())
    assert "jpeg + BPDA" in defenses["defenses"]
    comparison = json.loads(
        (out / "report" / "adversarial-training" / "comparison.json").read_text()
    )
    assert [m["name"] for m in comparison["models"]] == ["standard", "PGD-AT"]
    adaptive = json.loads((out / "report" / "adaptive" / "adaptive.json").read_text())["rows"]
    assert len(adaptive) == 2 * 3 * 3  # two classifiers × three settings × three budgets
    assert {row["steps"] for row in adaptive} == {10}


def test_demo_trains_the_classifier_exactly_as_train_does():
    """`advguard demo` and `advguard train` share one recipe: same defaults, same model."""
    from advguard.cli import build_parser

    parser = build_parser()
    train, demo = parser.parse_args(["train"]), parser.parse_args(["demo"])
    recipe = ("data", "image_size", "epochs", "patience", "time_limit", "ema_decay", "seed")
    assert {k: getattr(train, k) for k in recipe} == {k: getattr(demo, k) for k in recipe}
    assert train.epochs == TrainConfig.epochs and train.ema_decay == TrainConfig.ema_decay


def run_job_here(storage: Storage, params: BaseModel, settings: Settings) -> dict:
    """Run a job's body in this process, as a worker would (its record, its context)."""
    with storage.db.session() as session:
        record = JobRecord(type=params.type, params=params.model_dump(), state="running")
        session.add(record)
        session.flush()
        job_id = record.id
    body = JOB_KINDS[params.type].body
    assert body is not None
    return body(JobContext(storage, job_id, settings), params)


def test_a_cli_run_and_a_job_give_the_same_model_and_curves(
    trained_model_dir, folder_dataset, tmp_path
):
    """`advguard train` and `robustness` run the job bodies' steps: the same seed gives the
    same weights, metrics and robustness curves as the worker's jobs."""
    storage = Storage(tmp_path / "data", f"sqlite:///{tmp_path / 'jobs.db'}")
    settings = Settings(data_dir=tmp_path / "data", image_size=32)
    with storage.db.session() as session:
        session.add(DatasetRecord(id="folder", name="folder", source=str(folder_dataset)))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as the CLI process runs (ADVGUARD_NUM_THREADS=2)
    try:
        trained = run_job_here(
            storage, TrainClassifierParams(dataset_id="folder", epochs=3), settings
        )
    finally:
        torch.set_num_threads(threads)
    cli_model = trained_model_dir / "model"
    with storage.db.session() as session:
        model_record = session.get(ModelRecord, trained["model_id"])
        assert model_record is not None
        job_model = Path(model_record.path)
    cli_metrics = json.loads((cli_model / "metrics.json").read_text())
    job_metrics = json.loads((job_model / "metrics.json").read_text())
    for key in ("test_accuracy", "confusion_matrix", "epochs_run", "best_epoch"):
        assert job_metrics[key] == cli_metrics[key], key
    cli_weights = load_file(cli_model / "model.safetensors")
    job_weights = load_file(job_model / "model.safetensors")
    assert cli_weights.keys() == job_weights.keys()
    for name in cli_weights:
        torch.testing.assert_close(job_weights[name], cli_weights[name], rtol=0, atol=1e-6)

    out = tmp_path / "cli-robustness"
    result = advguard(
        "robustness", "--model", str(cli_model), "--data", str(folder_dataset),
        "--attacks", "fgsm,pgd", "--eps", "0,8/255", "--limit", "10", "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    params = EvaluateRobustnessParams(
        model_id=trained["model_id"], dataset_id="folder", attacks=["fgsm", "pgd"],
        eps=[0, 8 / 255], limit=10,
    )  # fmt: skip
    job = run_job_here(storage, params, settings)
    cli_curves = json.loads((out / "robustness.json").read_text())
    for key in ("clean_accuracy", "worst_case", "attack_params"):
        assert job["robustness"][key] == cli_curves[key], key
    accuracy = [(c["attack"], c["accuracy"]) for c in cli_curves["curves"]]
    assert [(c["attack"], c["accuracy"]) for c in job["robustness"]["curves"]] == accuracy
