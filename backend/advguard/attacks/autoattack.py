"""AutoAttack (Croce and Hein 2020, arXiv:2003.01690), the field's standard robustness
number: four complementary attacks, each run only on the images the previous ones left
robust, so an image counts as robust only if every one of them fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from advguard import __version__
from advguard.attacks.base import (
    L2_EPS,
    Attack,
    check_count,
    check_positive,
    create_attack,
    refuse_targeted,
    register,
)

VERSION = f"advguard {__version__} AutoAttack standard (APGD-CE, APGD-T, FAB-T, Square)"
"""What a report records as the AutoAttack it ran."""


@dataclass
class ComponentResult:
    """After one component of a run: how many of the images were still robust."""

    attack: str
    robust: int
    images: int


@register("autoattack")
class AutoAttack(Attack):
    """AutoAttack, standard version (L∞): APGD-CE, APGD-T (targeted DLR over the likeliest
    wrong classes), FAB-T and Square, worst case per image.

    Every component runs only on the images still classified correctly after the ones
    before it; the result per image is the first component's success, or the image itself
    when none succeeds. As in the reference, the gradient attacks take ``steps`` steps and
    one restart each, the targeted ones aim at up to ``n_target_classes`` classes, and
    Square gets ``n_queries`` queries. After a call, ``attack.components`` says how many
    images each component left robust.

    Arguments: ``eps`` (budget in pixel scale: L∞ here, L2 for ``autoattack-l2``),
    ``steps``, ``n_target_classes``, ``n_queries``, ``seed``.

    >>> attack = ATTACKS["autoattack"](model, eps=8 / 255)
    >>> x_adv = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        steps: int = 100,
        n_target_classes: int = 9,
        n_queries: int = 5000,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        refuse_targeted("autoattack", targeted)
        super().__init__(model, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.n_target_classes = check_count("n_target_classes", n_target_classes)
        self.n_queries = check_count("n_queries", n_queries)
        self.components: list[ComponentResult] = []

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "steps": self.steps,
            "n_target_classes": self.n_target_classes,
            "n_queries": self.n_queries,
            "version": VERSION,
            **super().params(),
        }

    def component_attacks(self) -> list[Attack]:
        """The attacks it runs, in order, configured as the standard version has them."""
        gradient: dict[str, Any] = {"eps": self.eps, "steps": self.steps, "seed": self.seed}
        targets = {"n_target_classes": self.n_target_classes}
        suffix = "" if self.norm == "linf" else "-l2"
        # Only whether an image breaks counts here: APGD stops each image at its first success.
        apgd = {**gradient, "stop_at_success": True}
        components = [
            create_attack("apgd" + suffix, self.model, **apgd, loss="ce"),
            create_attack("apgd-t" + suffix, self.model, **apgd, **targets),
            create_attack("fab-t" + suffix, self.model, **gradient, **targets),
        ]
        square = {"eps": self.eps, "n_queries": self.n_queries, "seed": self.seed}
        components.append(create_attack("square" + suffix, self.model, **square))
        return components

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        result = x.clone()
        with torch.no_grad():
            robust = self.model(x).argmax(1) == y if len(x) else y.bool()
        self.components = []
        for attack in self.component_attacks():
            todo = torch.nonzero(robust).squeeze(1)
            if todo.numel() and self.eps > 0:
                # Called as a user would: its own checks, its own seeded generator.
                adversarial = attack(x[todo], y[todo])
                with torch.no_grad():
                    broken = self.model(adversarial).argmax(1) != y[todo]
                result[todo[broken]] = adversarial[broken]
                robust[todo[broken]] = False
            self.components.append(ComponentResult(attack.name, int(robust.sum()), len(x)))
        return result


@register("autoattack-l2")
class AutoAttackL2(AutoAttack):
    """AutoAttack on the L2 ball (``eps`` an L2 radius in pixel scale): APGD-CE, APGD-T,
    FAB-T and Square, all on the L2 ball."""

    norm = "l2"

    def __init__(self, model: nn.Module, *, eps: float = L2_EPS, **params: Any) -> None:
        super().__init__(model, eps=eps, **params)
