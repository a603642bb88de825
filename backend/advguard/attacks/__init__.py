"""Adversarial attacks in pixel space [0, 1]; ``ATTACKS`` maps a name to its class."""

from advguard.attacks.apgd import APGD
from advguard.attacks.base import (
    ATTACKS,
    Attack,
    AttackError,
    attack_class,
    attack_defaults,
    attack_mode,
    attack_summary,
    create_attack,
    create_budget_attack,
    input_gradient,
)
from advguard.attacks.cw import CW
from advguard.attacks.deepfool import DeepFool
from advguard.attacks.linf import BIM, FGSM, MIM, PGD, LinfGradientAttack
from advguard.attacks.run import (
    AttackOutcome,
    ProgressCallback,
    format_eps,
    parse_budget,
    random_targets,
    run_attack,
    save_adversarial_set,
)
from advguard.attacks.square import Square

__all__ = [
    "APGD",
    "ATTACKS",
    "BIM",
    "CW",
    "FGSM",
    "MIM",
    "PGD",
    "Attack",
    "AttackError",
    "AttackOutcome",
    "DeepFool",
    "LinfGradientAttack",
    "ProgressCallback",
    "Square",
    "attack_class",
    "attack_defaults",
    "attack_mode",
    "attack_summary",
    "create_attack",
    "create_budget_attack",
    "format_eps",
    "input_gradient",
    "parse_budget",
    "random_targets",
    "run_attack",
    "save_adversarial_set",
]
