"""``advguard export-guard``: one TorchScript file that gives, without advguard, what the
served guard decides (class probabilities, score, verdict, attack probabilities)."""

from __future__ import annotations

import torch
from exported_guard import run_without_advguard

from advguard.cli import main
from advguard.guard import Guard

TOLERANCE = 1e-4


def _served(guard_dir, images: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    """What the service decides: the guard loaded for serving, in the same batches."""
    guard = Guard.load(guard_dir, serving=True)
    verdicts = [
        verdict
        for start in range(0, len(images), batch_size)
        for verdict in guard.predict(images[start : start + batch_size])
    ]
    return {
        "class_probabilities": torch.tensor(
            [list(v.class_probabilities.values()) for v in verdicts]
        ),
        "score": torch.tensor([v.score for v in verdicts]),
        "is_adversarial": torch.tensor([v.is_adversarial for v in verdicts]),
        "attack_probabilities": torch.tensor(
            [list(v.attack_probabilities.values()) for v in verdicts]
        ),
    }


def test_the_exported_guard_matches_the_served_one_without_advguard(
    built, trained_detector, tmp_path, capsys
):
    detector, _ = trained_detector
    guard_dir = Guard(built.model, built.spec, detector).save(tmp_path / "guard")
    out = tmp_path / "exported" / "guard.pt"
    assert main(["export-guard", "--guard", str(guard_dir), "--out", str(out)]) == 0
    assert "torch.jit.load" in capsys.readouterr().out
    # the test split's clean images and their attacked versions, as 8-bit uploads
    test_rows = built.adversarial.where(lambda row: row.split == "test")
    images = built.adversarial.float_images(test_rows)
    # batches of one and two take the paired path (image and median in one pass), larger
    # ones two passes: each must match the served guard's same path
    for batch_size in (1, 2, 64):
        exported, metadata = run_without_advguard(
            out, images, batch_size, tmp_path / f"{batch_size}"
        )
        served = _served(guard_dir, images, batch_size)
        for name in ("class_probabilities", "score", "attack_probabilities"):
            difference = (exported[name] - served[name]).abs().max().item()
            assert difference <= TOLERANCE, (batch_size, name, difference)
        assert torch.equal(exported["is_adversarial"], served["is_adversarial"])
    assert 0 < int(served["is_adversarial"].sum()) < len(images)  # both kinds of verdict
    assert metadata["class_names"] == built.spec.class_names
    assert metadata["attack_names"] == detector.attack_names
    assert metadata["threshold"] == detector.threshold


def test_export_guard_says_what_is_missing(tmp_path, capsys):
    assert main(["export-guard", "--guard", str(tmp_path / "nowhere"), "--out", "x.pt"]) == 2
    assert "export-guard: error:" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
