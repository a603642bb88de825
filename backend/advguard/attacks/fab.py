"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce and Hein 2020, ICML,
arXiv:1907.02044), on the L∞ ball (``fab-t``) and the L2 ball (``fab-t-l2``).

FAB looks for the adversarial image closest to the clean one. Each step linearises the
decision boundary between the true class and the target at the current point, projects
both the current point and the clean image onto that hyperplane (inside the image box
[0, 1]), and moves to a mix of the two projections, extrapolated a little (``eta``). Once
the point is adversarial it is pulled back towards the clean image (``beta``), so later
steps find closer ones.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    L2_EPS,
    Attack,
    AttackError,
    check_count,
    check_positive,
    likeliest_wrong_classes,
    random_ball_direction,
    refuse_targeted,
    register,
)

_TINY = 1e-12


def box_hyperplane_step(point: Tensor, weight: Tensor, offset: Tensor, norm: str) -> Tensor:
    """The smallest step ``δ`` (in ``norm``: ``"linf"`` or ``"l2"``) with
    ``weight·(point + δ) = offset`` and ``point + δ`` in [0, 1]; where the box does not reach
    the hyperplane, the step that gets closest. Rows are flattened images.

    Along the direction that moves ``weight·(point + δ)`` towards ``offset``, coordinate i
    has ``room_i`` before the box's edge. For a step size μ, it moves ``min(μ, room_i)``
    (L∞) or ``min(μ·|w_i|, room_i)`` (L2), adding ``a_i·min(μ, b_i)`` to the product, with
    ``(a_i, b_i) = (|w_i|, room_i)`` (L∞) or ``(w_i², room_i/|w_i|)`` (L2). That sum grows
    piecewise linearly in μ with breakpoints ``b_i``: sorting them gives the μ that closes
    the gap exactly.
    """
    gap = offset - (weight * point).sum(1)
    towards = gap.sign()[:, None] * weight.sign()  # the direction of each coordinate's move
    room = torch.where(towards > 0, 1 - point, point)  # zero where the weight is zero
    size = weight.abs()
    if norm == "l2":
        rate, breakpoint = size.square(), room / size.clamp_min(_TINY)
    else:
        rate, breakpoint = size, room
    order = breakpoint.argsort(1)
    rate_sorted, break_sorted = rate.gather(1, order), breakpoint.gather(1, order)
    # Reached at μ = b_(k): the saturated coordinates' full rooms plus μ times the rest's rates.
    saturated = (rate_sorted * break_sorted).cumsum(1) - rate_sorted * break_sorted
    rest = rate_sorted.flip(1).cumsum(1).flip(1)
    reached = saturated + break_sorted * rest
    needed = gap.abs()[:, None]
    first = (reached < needed).sum(1, keepdim=True)  # the segment where the gap closes
    feasible = first.squeeze(1) < weight.shape[1]
    index = first.clamp(max=weight.shape[1] - 1)
    mu = (needed - saturated.gather(1, index)) / rest.gather(1, index).clamp_min(_TINY)
    mu = torch.where(feasible[:, None], mu, torch.full_like(mu, float("inf")))
    magnitude = torch.minimum(mu * (size if norm == "l2" else torch.ones_like(size)), room)
    return towards * magnitude


def _length(values: Tensor, norm: str) -> Tensor:
    """Per-row L∞ or L2 length of flattened images."""
    return values.abs().amax(1) if norm == "linf" else values.norm(dim=1)


@register("fab-t")
class FABT(Attack):
    """FAB-T: the closest adversarial image towards each of the likeliest wrong classes in
    turn (L∞), kept when within ``eps``.

    For the 2nd, 3rd, … likeliest classes of the clean image (at most ``n_target_classes``),
    ``n_restarts`` runs of ``steps`` FAB steps each aim at that class (the first from the
    clean image, later ones from a random point at half the best distance so far), every
    run only on the images not yet broken within ``eps``. An image that no run breaks
    within ``eps`` comes back unchanged. ``y`` holds the true labels.

    Arguments: ``eps`` (budget in pixel scale: L∞ here, L2 for ``fab-t-l2``), ``steps``,
    ``n_restarts``, ``n_target_classes``, ``alpha_max`` (largest weight of the clean
    image's projection), ``eta`` (overshoot of each step), ``beta`` (pull back towards the
    clean image once adversarial), ``seed``.

    >>> attack = ATTACKS["fab-t"](model, eps=8 / 255, steps=100)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        steps: int = 10,
        n_restarts: int = 1,
        n_target_classes: int = 9,
        alpha_max: float = 0.1,
        eta: float = 1.05,
        beta: float = 0.9,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        refuse_targeted("fab-t (it picks its own targets)", targeted)
        super().__init__(model, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.n_restarts = check_count("n_restarts", n_restarts)
        self.n_target_classes = check_count("n_target_classes", n_target_classes)
        self.alpha_max = check_positive("alpha_max", alpha_max)
        if self.alpha_max > 1:
            raise AttackError(f"alpha_max must lie in (0, 1], got {alpha_max}")
        self.eta = check_positive("eta", eta)
        self.beta = check_positive("beta", beta)
        if self.beta > 1:
            raise AttackError(f"beta must lie in (0, 1], got {beta}")

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "steps": self.steps,
            "n_restarts": self.n_restarts,
            "n_target_classes": self.n_target_classes,
            "alpha_max": self.alpha_max,
            "eta": self.eta,
            "beta": self.beta,
            **super().params(),
        }

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        result = x.clone()
        if x.shape[0] == 0 or self.eps == 0:
            return result
        with torch.no_grad():
            logits = self.model(x)
        robust = logits.argmax(1) == y
        for target in likeliest_wrong_classes(logits, self.n_target_classes):
            for restart in range(self.n_restarts):
                todo = torch.nonzero(robust).squeeze(1)
                if todo.numel() == 0:
                    return result
                adv, found = self._single_run(
                    x[todo], y[todo], target[todo], generator, random_start=restart > 0
                )
                within = found & (_length((adv - x[todo]).flatten(1), self.norm) <= self.eps)
                result[todo[within]] = adv[within]
                robust[todo[within]] = False
        return result

    def _boundary(self, point: Tensor, y: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``z_target − z_y`` at ``point`` (the boundary is where it is 0) and its gradient."""
        point = point.detach().requires_grad_(True)
        logits = self.model(point)
        difference = logits.gather(1, target[:, None]) - logits.gather(1, y[:, None])
        (gradient,) = torch.autograd.grad(difference.sum(), point)
        return difference.detach().squeeze(1), gradient

    def _single_run(
        self, x: Tensor, y: Tensor, target: Tensor, generator: torch.Generator, random_start: bool
    ) -> tuple[Tensor, Tensor]:
        """One FAB-T run: the closest adversarial image found per image, and whether one was."""
        n, shape = x.shape[0], x.shape
        clean = x.flatten(1)
        best = x.clone()
        best_distance = torch.full((n,), float("inf"), device=x.device)
        current = x.clone()
        if random_start:
            # A random point at half the budget, as the reference does for later restarts.
            direction = random_ball_direction(x, self.norm, generator)
            current = (x + 0.5 * self.eps * direction).clamp(0, 1)
        for _ in range(self.steps):
            value, gradient = self._boundary(current, y, target)
            weight = gradient.flatten(1)
            here = current.flatten(1)
            # The linearised boundary: weight·z = weight·here − value.
            offset = (weight * here).sum(1) - value
            step_here = box_hyperplane_step(here, weight, offset, self.norm)
            step_clean = box_hyperplane_step(clean, weight, offset, self.norm)
            far_here = _length(step_here, self.norm).clamp_min(1e-8)
            far_clean = _length(step_clean, self.norm).clamp_min(1e-8)
            alpha = (far_here / (far_here + far_clean)).clamp(0, self.alpha_max)[:, None]
            mixed = (here + self.eta * step_here) * (1 - alpha) + (
                clean + self.eta * step_clean
            ) * alpha
            current = mixed.clamp(0, 1).view(shape)
            with torch.no_grad():
                adversarial = self.model(current).argmax(1) != y
            distance = _length((current - x).flatten(1), self.norm)
            closer = adversarial & (distance < best_distance)
            best[closer] = current[closer]
            best_distance = torch.where(closer, distance, best_distance)
            # Once across, go back towards the clean image to look for a closer crossing.
            current = torch.where(
                adversarial.view((-1,) + (1,) * (x.ndim - 1)),
                x + self.beta * (current - x),
                current,
            )
        return best, torch.isfinite(best_distance)


@register("fab-t-l2")
class FABTL2(FABT):
    """FAB-T on the L2 ball: ``eps`` is the L2 radius in pixel scale."""

    norm = "l2"

    def __init__(self, model: nn.Module, *, eps: float = L2_EPS, **params: Any) -> None:
        super().__init__(model, eps=eps, **params)
