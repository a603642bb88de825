"""Metrics against scikit-learn, and the robustness table on a small trained model."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import accuracy_score
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from advguard.evaluation import (
    confusion_matrix,
    evaluate_classifier,
    format_eps,
    format_table,
    robustness_table,
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


def test_robustness_table_rows(trained_small):
    data = trained_small.test.subset(torch.arange(40))
    rows = robustness_table(
        trained_small.model, data, ("fgsm", "pgd", "cw"), (2 / 255, 8 / 255), show_progress=False
    )
    assert [(r.attack, r.eps) for r in rows] == [
        ("fgsm", 2 / 255),
        ("fgsm", 8 / 255),
        ("pgd", 2 / 255),
        ("pgd", 8 / 255),
        ("cw", None),
    ]
    by_key = {(r.attack, r.eps): r for r in rows}
    assert (
        by_key[("pgd", 8 / 255)].adversarial_accuracy
        <= by_key[("pgd", 2 / 255)].adversarial_accuracy
    )
    assert by_key[("pgd", 8 / 255)].max_linf <= 8 / 255 + 1e-6
    assert all(r.clean_accuracy == rows[0].clean_accuracy for r in rows)
    assert format_table(rows).count("\n") == len(rows) + 1
