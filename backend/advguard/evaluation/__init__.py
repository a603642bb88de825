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
    ROBUSTNESS_ATTACKS,
    ROBUSTNESS_EPSILONS,
    DefenseSetting,
    RobustnessCurve,
    RobustnessResult,
    RobustnessRow,
    defense_settings,
    evaluate_robustness,
    format_eps,
    format_table,
    json_ready,
    plot_robustness,
    write_robustness_report,
)

__all__ = [
    "DEMO_ATTACKS",
    "DEMO_EPSILONS",
    "ROBUSTNESS_ATTACKS",
    "ROBUSTNESS_EPSILONS",
    "AttackOutcome",
    "ClassifierMetrics",
    "DefenseSetting",
    "RobustnessCurve",
    "RobustnessResult",
    "RobustnessRow",
    "confusion_matrix",
    "defense_settings",
    "evaluate_classifier",
    "evaluate_robustness",
    "format_confusion",
    "format_eps",
    "format_table",
    "json_ready",
    "plot_robustness",
    "random_targets",
    "run_attack",
    "save_adversarial_set",
    "training_summary",
    "write_robustness_report",
]
