"""L∞ gradient-sign attacks: FGSM, BIM, PGD and MIM share one loop and differ in defaults.

References: FGSM, Goodfellow et al. 2015 (arXiv:1412.6572); BIM, Kurakin et al. 2017
(arXiv:1607.02533); PGD, Madry et al. 2018 (arXiv:1706.06083); MIM, Dong et al. 2018
(arXiv:1710.06081).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    Attack,
    check_count,
    check_positive,
    input_gradient,
    register,
)


class LinfGradientAttack(Attack):
    """Iterated signed-gradient steps projected onto the L∞ ball of radius ``eps`` ∩ [0, 1].

    Arguments: ``eps`` (L∞ budget in pixel scale), ``alpha`` (step size), ``steps``,
    ``random_start`` (uniform start inside the ball), ``decay`` (momentum μ; 0 = none),
    ``targeted``, ``seed``. Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N; returns N×C×H×W.

    >>> attack = ATTACKS["pgd"](model, eps=8 / 255)
    >>> x_adv = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        random_start: bool = False,
        decay: float = 0.0,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.alpha = check_positive("alpha", alpha)
        self.steps = check_count("steps", steps)
        self.random_start = bool(random_start)
        self.decay = check_positive("decay", decay, allow_zero=True)

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "random_start": self.random_start,
            "decay": self.decay,
            **super().params(),
        }

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        lower = (x - self.eps).clamp_(min=0.0)
        upper = (x + self.eps).clamp_(max=1.0)
        x_adv = x
        if self.random_start and self.eps > 0:
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x_adv = torch.clamp(x + (2 * noise - 1) * self.eps, lower, upper)
        momentum = torch.zeros_like(x) if self.decay > 0 else None
        for _ in range(self.steps):
            gradient, _ = input_gradient(self.model, x_adv, y, self.targeted)
            if momentum is None:
                direction = gradient.sign_()
            else:
                # MIM: accumulate the L1-normalised gradient so one step's scale does not dominate.
                l1 = gradient.abs().sum(dim=(1, 2, 3), keepdim=True).clamp_(min=1e-12)
                momentum.mul_(self.decay).add_(gradient.div_(l1))
                direction = momentum.sign()
            # max/min against the precomputed bounds is the projection onto the ball ∩ [0, 1];
            # for one step from x it reproduces clip(x + eps·sign(g), 0, 1) bit for bit
            # (alpha·sign(g) is exact, so the fused add rounds once, like the formula).
            x_adv = torch.add(x_adv, direction, alpha=self.alpha).clamp_(lower, upper)
        return x_adv


@register("fgsm")
class FGSM(LinfGradientAttack):
    """Fast Gradient Sign Method: one step of size ``eps``, ``clip(x + eps·sign(∇ₓL), 0, 1)``."""

    def __init__(
        self, model: nn.Module, *, eps: float = 8 / 255, targeted: bool = False, seed: int = 0
    ) -> None:
        super().__init__(
            model, eps=eps, alpha=max(eps, 1e-12), steps=1, targeted=targeted, seed=seed
        )

    def params(self) -> dict[str, object]:
        return {"eps": self.eps, "targeted": self.targeted, "seed": self.seed}


@register("bim")
class BIM(LinfGradientAttack):
    """Basic Iterative Method (I-FGSM): ``steps`` signed steps of ``alpha`` from ``x``."""

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps=eps, alpha=alpha, steps=steps, targeted=targeted, seed=seed)


@register("pgd")
class PGD(LinfGradientAttack):
    """Projected Gradient Descent: BIM from a uniformly random start inside the ball."""

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        random_start: bool = True,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            model,
            eps=eps,
            alpha=alpha,
            steps=steps,
            random_start=random_start,
            targeted=targeted,
            seed=seed,
        )


@register("mim")
class MIM(LinfGradientAttack):
    """Momentum Iterative Method: BIM on a momentum (``decay`` μ) of L1-normalised gradients."""

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        alpha: float = 2 / 255,
        steps: int = 10,
        decay: float = 1.0,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            model, eps=eps, alpha=alpha, steps=steps, decay=decay, targeted=targeted, seed=seed
        )
