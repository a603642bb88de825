"""Metrics against scikit-learn, and robustness over ε on a small trained model."""

from __future__ import annotations

import json

import pytest
import torch
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from advguard.attacks import ATTACKS, run_attack
from advguard.evaluation import (
    DefenseSetting,
    RobustnessRow,
    confusion_matrix,
    defense_settings,
    evaluate_classifier,
    evaluate_robustness,
    format_eps,
    format_table,
    write_robustness_report,
)


def test_confusion_matrix_matches_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (300,), generator=generator)
    predictions = torch.randint(0, 5, (300,), generator=generator)
    ours = confusion_matrix(labels, predictions, 5)
    assert ours == sklearn_confusion_matrix(labels, predictions, labels=range(5)).tolist()


def test_evaluate_classifier_agrees_with_scikit_learn(trained_small):
    metrics = evaluate_classifier(trained_small.model, trained_small.test)
    predictions = trained_small.model(trained_small.test.images).argmax(1)
    assert metrics.accuracy == pytest.approx(accuracy_score(trained_small.test.labels, predictions))
    assert "true \\ predicted" in metrics.format_confusion()


@pytest.mark.parametrize(("eps", "text"), [(8 / 255, "8/255"), (0.01, "0.01"), (None, "L2")])
def test_format_eps(eps, text):
    assert format_eps(eps) == text


def test_format_table_has_a_line_per_row():
    rows = [
        RobustnessRow("pgd", 8 / 255, 0.9, 0.1, 0.88, 1.2, 8 / 255, 3.0),
        RobustnessRow("cw", None, 0.9, 0.0, 1.0, 0.4, 0.02, float("nan")),
    ]
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1
    assert "| pgd | 8/255 | 0.900 | 0.100 |" in table and "| cw | L2 |" in table


@pytest.fixture(scope="module")
def robustness(trained_small):
    data = trained_small.test.sample(48, seed=1)
    settings = defense_settings(["bit_depth"])
    return evaluate_robustness(
        trained_small.model,
        data,
        ("fgsm", "pgd", "cw"),
        (0, 2 / 255, 8 / 255),
        settings,
        show_progress=False,
    )


def test_robustness_curves_start_at_clean_accuracy_and_fall(robustness, trained_small):
    assert robustness.epsilons == [0, 2 / 255, 8 / 255]
    assert robustness.defenses == ["none", "bit_depth", "bit_depth + BPDA"]
    data = trained_small.test.sample(48, seed=1)
    clean = float((trained_small.model(data.images).argmax(1) == data.labels).float().mean())
    assert robustness.clean_accuracy["none"] == pytest.approx(clean)
    for curve in robustness.curves:
        assert curve.accuracy[0] == robustness.clean_accuracy[curve.defense]
    pgd = robustness.curve("none", "pgd").accuracy
    assert pgd[2] <= pgd[1] < pgd[0]
    assert pgd[2] < 0.2 * pgd[0]  # PGD at 8/255 breaks an undefended small model
    # CW is a minimal-perturbation attack: broken at ε only within that L∞ budget.
    cw = robustness.curve("none", "cw").accuracy
    assert cw[0] >= cw[1] >= cw[2]


def test_worst_case_is_per_image_and_below_every_attack(robustness):
    for defense in robustness.defenses:
        curves = [robustness.curve(defense, attack).accuracy for attack in robustness.attacks]
        for i in range(len(robustness.epsilons)):
            assert robustness.worst_case[defense][i] <= min(curve[i] for curve in curves)


def test_bpda_exposes_the_masked_gradient_of_bit_depth_reduction(robustness):
    """Rounding has a zero gradient: plain PGD through it barely moves the accuracy; the
    same attack with BPDA (straight-through) brings it down (the defense only hid it)."""
    plain = robustness.curve("bit_depth", "pgd").accuracy
    bpda = robustness.curve("bit_depth + BPDA", "pgd").accuracy
    assert plain[2] > bpda[2] + 0.3
    assert robustness.worst_case["bit_depth + BPDA"][2] <= robustness.worst_case["bit_depth"][2]


def test_robustness_report_files(robustness, tmp_path):
    files = write_robustness_report(robustness, tmp_path)
    saved = json.loads((tmp_path / files["json"]).read_text())
    assert saved["worst_case"] == robustness.worst_case
    markdown = (tmp_path / files["markdown"]).read_text()
    # An L∞ and an L2 table (CW is judged on both grids) for each of the three settings.
    assert markdown.count("| **worst case** |") == 6
    assert "| cw |" in markdown and "ε₂=0.5" in markdown
    assert (tmp_path / files["plot"]).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attacks": ("nope",)}, "unknown attack"),
        ({"attacks": ()}, "at least one attack"),
        ({"epsilons": (-1 / 255,)}, "between 0 and 1"),
        ({"l2_epsilons": (-0.5,)}, "L2 budgets must be between 0"),
        ({"attacks": ("pgd-l2",), "l2_epsilons": (0,)}, "pgd-l2 need a non-zero L2 budget"),
    ],
)
def test_robustness_refuses_bad_requests(trained_small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_robustness(trained_small.model, trained_small.test, **kwargs)


def test_l2_attacks_are_measured_on_the_l2_grid(trained_small):
    """An L2-ball attack runs at each L2 radius, an L∞ one at each L∞ budget, and a
    minimal-perturbation attack once, judged on both grids by its own perturbation sizes."""
    model, data = trained_small.model, trained_small.test.sample(32, seed=3)
    result = evaluate_robustness(
        model, data, ("pgd", "pgd-l2", "deepfool"), (0, 8 / 255),
        l2_epsilons=(0, 0.25, 1.0), show_progress=False,
    )  # fmt: skip
    assert result.l2_epsilons == [0, 0.25, 1.0]
    assert result.attacks_on("linf") == ["pgd", "deepfool"]
    assert result.attacks_on("l2") == ["pgd-l2", "deepfool"]
    with pytest.raises(KeyError):
        result.curve("none", "pgd-l2")  # never judged by an L∞ budget
    clean = result.clean_accuracy["none"]
    pgd_l2 = result.curve("none", "pgd-l2", "l2").accuracy
    assert pgd_l2[0] == clean and pgd_l2[2] <= pgd_l2[1] < clean
    assert pgd_l2[2] < 0.2 * clean  # an L2 radius of 1 breaks the small model
    # DeepFool on the L2 grid: broken where its own L2 perturbation fits the radius.
    outcome = run_attack(model, ATTACKS["deepfool"](model), data, show_progress=False)
    correct = outcome.predicted_before == data.labels
    for radius, accuracy in zip(
        result.l2_epsilons, result.curve("none", "deepfool", "l2").accuracy, strict=True
    ):
        fooled = (outcome.predicted_after != data.labels) & (outcome.l2 <= radius + 1e-6)
        assert accuracy == pytest.approx(float((correct & ~fooled).float().mean()))
    for i in range(3):
        assert result.worst_case_l2["none"][i] <= min(
            result.curve("none", attack, "l2").accuracy[i] for attack in ("pgd-l2", "deepfool")
        )
    assert "ε₂=0.25" in result.markdown() and "ε∞=8/255" in result.markdown()


def test_defense_settings_refuse_unknown_names():
    with pytest.raises(ValueError, match="unknown defense 'blur'"):
        DefenseSetting("blur")


def test_a_decision_based_attack_is_reported_against_its_query_budget(trained_small):
    """HopSkipJump in a robustness run: accuracy at each query budget up to its maximum,
    never higher with more queries (an attacker keeps the smallest adversarial image seen),
    at most its curve's at the last budget; batches joined in order (two batches here)."""
    data = trained_small.test.sample(24, seed=2)
    grid = (0, 4 / 255, 16 / 255, 64 / 255)
    result = evaluate_robustness(
        trained_small.model, data, ("hopskipjump",), grid, batch_size=16, show_progress=False
    )
    budgets = [curve.queries for curve in result.query_budgets]
    assert budgets == [100, 250, 500, 1000]  # the default maximum is 1,000 queries
    for curve in result.query_budgets:
        assert curve.accuracy[0] == result.clean_accuracy["none"]
        assert curve.accuracy == sorted(curve.accuracy, reverse=True)  # larger ε, lower
    for fewer, more in zip(result.query_budgets, result.query_budgets[1:], strict=False):
        assert all(m <= f for f, m in zip(fewer.accuracy, more.accuracy, strict=True))
    final = result.curve("none", "hopskipjump").accuracy
    assert all(b <= f for b, f in zip(result.query_budgets[-1].accuracy, final, strict=True))
    assert result.query_budgets[0].accuracy[-1] > result.query_budgets[-1].accuracy[-1]
    assert "| hopskipjump | ≤ 250 |" in result.markdown()
