"""Measuring attacks and models: per-image outcomes and robustness tables."""

from advguard.evaluation.attack_run import (
    AttackOutcome,
    random_targets,
    run_attack,
    save_adversarial_set,
)
from advguard.evaluation.metrics import (
    ClassifierMetrics,
    confusion_matrix,
    evaluate_classifier,
    format_confusion,
    training_summary,
)
from advguard.evaluation.robustness import (
    DEMO_ATTACKS,
    DEMO_EPSILONS,
    RobustnessRow,
    format_eps,
    format_table,
    json_ready,
    robustness_table,
)

__all__ = [
    "DEMO_ATTACKS",
    "DEMO_EPSILONS",
    "AttackOutcome",
    "ClassifierMetrics",
    "RobustnessRow",
    "confusion_matrix",
    "evaluate_classifier",
    "format_confusion",
    "format_eps",
    "format_table",
    "json_ready",
    "random_targets",
    "robustness_table",
    "run_attack",
    "save_adversarial_set",
    "training_summary",
]
