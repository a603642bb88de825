"""Adversarial attacks in pixel space [0, 1]; ``ATTACKS`` maps a name to its class."""

from advguard.attacks.apgd import APGD, APGDL2, APGDT, APGDTL2
from advguard.attacks.autoattack import AutoAttack, AutoAttackL2
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
from advguard.attacks.fab import FABT, FABTL2
from advguard.attacks.hopskipjump import HopSkipJump
from advguard.attacks.l2 import PGDL2
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
from advguard.attacks.square import Square, SquareL2

__all__ = [
    "APGD",
    "APGDL2",
    "APGDT",
    "APGDTL2",
    "ATTACKS",
    "BIM",
    "CW",
    "FABT",
    "FABTL2",
    "FGSM",
    "MIM",
    "PGD",
    "PGDL2",
    "Attack",
    "AttackError",
    "AttackOutcome",
    "AutoAttack",
    "AutoAttackL2",
    "DeepFool",
    "HopSkipJump",
    "LinfGradientAttack",
    "ProgressCallback",
    "Square",
    "SquareL2",
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
