"""PGD on the L2 ball (Madry et al. 2018, arXiv:1706.06083, with L2 steps)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    L2_EPS,
    Attack,
    check_count,
    check_positive,
    input_gradient,
    l2_direction,
    project_l2,
    register,
)


@register("pgd-l2")
class PGDL2(Attack):
    """PGD on the L2 ball: steps of length ``alpha`` along the normalised gradient, each
    projected onto the ball of radius ``eps`` ∩ [0, 1], from a random point inside it.

    Arguments: ``eps`` (L2 radius in pixel scale), ``alpha`` (step length), ``steps``,
    ``random_start``, ``targeted``, ``seed``. Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N;
    returns N×C×H×W.

    >>> attack = ATTACKS["pgd-l2"](model, eps=0.5, alpha=0.1, steps=10)
    """

    norm = "l2"

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = L2_EPS,
        alpha: float = L2_EPS / 4,
        steps: int = 10,
        random_start: bool = True,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.alpha = check_positive("alpha", alpha)
        self.steps = check_count("steps", steps)
        self.random_start = bool(random_start)

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "alpha": self.alpha,
            "steps": self.steps,
            "random_start": self.random_start,
            **super().params(),
        }

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        x_adv = x
        if self.eps == 0:
            return x.clone()
        if self.random_start:
            # Uniform direction, radius uniform in [0, eps]: a start inside the ball.
            direction = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            radius = torch.rand(
                (x.shape[0],) + (1,) * (x.ndim - 1),
                generator=generator,
                device=x.device,
                dtype=x.dtype,
            )
            x_adv = project_l2(x, x + self.eps * radius * l2_direction(direction), self.eps)
        for _ in range(self.steps):
            gradient, _ = input_gradient(self.model, x_adv, y, self.targeted)
            x_adv = project_l2(x, x_adv + self.alpha * l2_direction(gradient), self.eps)
        return x_adv
