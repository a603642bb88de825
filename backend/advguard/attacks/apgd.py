"""Auto-PGD (Croce and Hein 2020, arXiv:2003.01690): APGD-CE, APGD-DLR and APGD-T, on the
L∞ ball (``apgd``, ``apgd-t``) and on the L2 ball (``apgd-l2``, ``apgd-t-l2``)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advguard.attacks.base import (
    L2_EPS,
    Attack,
    AttackError,
    check_count,
    check_positive,
    l2_direction,
    likeliest_wrong_classes,
    project_l2,
    random_ball_direction,
    refuse_targeted,
    register,
)

_MOMENTUM = 0.75  # α in the paper: weight of the new step against the previous one
_TINY = 1e-12

Loss = Literal["ce", "dlr"]


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference of logits ratio, per image (higher: closer to misclassified):
    ``−(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)``, with ``z_π`` the logits sorted in
    decreasing order. Invariant to shifting and scaling the logits; needs three classes."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf")).amax(1)
    return -(true - others) / (ordered[:, 0] - ordered[:, 2] + _TINY)


def targeted_dlr_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Targeted DLR, per image (higher: closer to ``target``):
    ``−(z_y − z_t) / (z_π1 − (z_π3 + z_π4) / 2)``; needs four classes."""
    ordered = logits.sort(dim=1, descending=True).values
    true = logits.gather(1, y[:, None]).squeeze(1)
    aimed = logits.gather(1, target[:, None]).squeeze(1)
    return -(true - aimed) / (ordered[:, 0] - (ordered[:, 2] + ordered[:, 3]) / 2 + _TINY)


@register("apgd")
class APGD(Attack):
    """APGD: PGD with momentum and a step size that halves when progress stalls (L∞).

    Follows Croce & Hein 2020 (Algorithm 1) and their reference implementation: the step
    size starts at ``2·eps``; at checkpoints (first after ``0.22·steps`` iterations, then at
    shrinking intervals down to ``0.06·steps``) an image's step size is halved and it
    restarts from its best point when the loss rose in at most a fraction ``rho`` of the
    steps since the last checkpoint, or when neither the step size nor the best loss changed
    since then. Steps use momentum 0.75. Each restart begins at a random point of the ball;
    later restarts only run on images not yet broken. The result per image is the last
    adversarial point found, or the point of highest loss when none was found; with
    ``stop_at_success=True`` an image stops at its first adversarial point (the same images
    are broken, with fewer gradients: AutoAttack's use).

    ``loss="ce"`` (APGD-CE) ascends the cross-entropy of ``y`` (descends it towards the
    target with ``targeted=True``); ``loss="dlr"`` (APGD-DLR, untargeted only) ascends the
    difference of logits ratio, which does not saturate with overconfident logits.

    Arguments: ``eps`` (budget in pixel scale: L∞ here, L2 for ``apgd-l2``), ``steps``,
    ``n_restarts``, ``rho``, ``loss``, ``targeted``, ``stop_at_success``, ``seed``.
    Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N; returns N×C×H×W.

    >>> attack = ATTACKS["apgd"](model, eps=8 / 255, steps=10)
    >>> x_adv = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        steps: int = 10,
        n_restarts: int = 1,
        rho: float = 0.75,
        loss: Loss = "ce",
        targeted: bool = False,
        stop_at_success: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.stop_at_success = bool(stop_at_success)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.n_restarts = check_count("n_restarts", n_restarts)
        rho = check_positive("rho", rho, allow_zero=True)
        if rho > 1:
            raise AttackError(f"rho must lie in [0, 1], got {rho}")
        self.rho = rho
        if loss not in ("ce", "dlr"):
            raise AttackError(f"loss must be 'ce' or 'dlr', got {loss!r}")
        if loss == "dlr" and targeted:
            raise AttackError("the DLR loss is untargeted here; use apgd-t for targeted DLR")
        self.loss = loss

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "steps": self.steps,
            "n_restarts": self.n_restarts,
            "rho": self.rho,
            "loss": self.loss,
            "stop_at_success": self.stop_at_success,
            **super().params(),
        }

    # --- the ball ---------------------------------------------------------------------

    def _random_start(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A random point on the surface of the ball around ``x`` (then clipped to [0, 1])."""
        return (x + self.eps * random_ball_direction(x, self.norm, generator)).clamp(0, 1)

    def _project(self, x: Tensor, point: Tensor) -> Tensor:
        """``point`` moved into the ball around ``x`` and into [0, 1]."""
        if self.norm == "l2":
            return project_l2(x, point, self.eps)
        return torch.minimum(torch.maximum(point, x - self.eps), x + self.eps).clamp(0, 1)

    def _ascent(self, gradient: Tensor) -> Tensor:
        """The unit step direction for ``gradient``: its sign (L∞), its direction (L2)."""
        return l2_direction(gradient) if self.norm == "l2" else gradient.sign()

    # --- the loss ---------------------------------------------------------------------

    def _objective(self, logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
        """Per-image loss to maximise."""
        if target is not None:
            return targeted_dlr_loss(logits, y, target)
        if self.loss == "dlr":
            return dlr_loss(logits, y)
        loss = F.cross_entropy(logits, y, reduction="none")
        return -loss if self.targeted else loss

    def _loss_and_gradient(
        self, x_adv: Tensor, y: Tensor, target: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-image loss to maximise, its input gradient, and the logits."""
        point = x_adv.detach().requires_grad_(True)
        logits = self.model(point)
        loss = self._objective(logits, y, target)
        (gradient,) = torch.autograd.grad(loss.sum(), point)
        return loss.detach(), gradient, logits.detach()

    def _check_classes(self, num_classes: int) -> None:
        if self.loss == "dlr" and num_classes < 3:
            raise AttackError(f"the DLR loss needs 3 classes or more, the model has {num_classes}")

    # --- the attack -------------------------------------------------------------------

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        result = x.clone()
        if x.shape[0] == 0 or self.eps == 0:
            return result
        with torch.no_grad():
            self._check_classes(self.model(x[:1]).shape[1])
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        for _ in range(self.n_restarts):
            self._restart(x, y, None, generator, result, found, best_loss)
        return result

    def _restart(
        self,
        x: Tensor,
        y: Tensor,
        target: Tensor | None,
        generator: torch.Generator,
        result: Tensor,
        found: Tensor,
        best_loss: Tensor,
    ) -> None:
        """One APGD run on the images not yet broken, updating ``result``, ``found`` and
        ``best_loss`` in place (success beats any loss; among failures the highest loss)."""
        todo = torch.nonzero(~found).squeeze(1)
        if todo.numel() == 0:
            return
        aimed = None if target is None else target[todo]
        adv, loss, success = self._attack_once(x[todo], y[todo], aimed, generator)
        better = success | (~success & (loss > best_loss[todo]))
        result[todo[better]] = adv[better]
        best_loss[todo[better]] = loss[better]
        found[todo[success]] = True

    def _attack_once(
        self, x: Tensor, y: Tensor, target: Tensor | None, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One APGD run from a random start: (result, its best loss, success per image)."""
        n, eps = x.shape[0], self.eps
        view = (-1,) + (1,) * (x.ndim - 1)
        x_adv = self._random_start(x, generator)

        loss, gradient, logits = self._loss_and_gradient(x_adv, y, target)
        success = self.is_successful(logits, y)
        # Each image's run is its own (per-image step sizes), so one that stops changes no
        # other: with stop_at_success the gradient is only taken for the others.
        active = ~success if self.stop_at_success else torch.ones_like(success)
        x_best_adv = x_adv.clone()
        x_best, gradient_best, loss_best = x_adv.clone(), gradient.clone(), loss.clone()
        history = [loss]

        step_size = torch.full((n,), 2 * eps, device=x.device, dtype=x.dtype).view(view)
        interval = max(int(0.22 * self.steps), 1)
        min_interval = max(int(0.06 * self.steps), 1)
        decrease = max(int(0.03 * self.steps), 1)
        since_check = 0
        loss_best_last_check = loss_best.clone()
        reduced_last_check = torch.ones(n, dtype=torch.bool, device=x.device)
        x_previous = x_adv.clone()

        for i in range(self.steps):
            if not active.any():
                break
            momentum = x_adv - x_previous
            x_previous = x_adv
            alpha = _MOMENTUM if i > 0 else 1.0
            z = self._project(x, x_adv + step_size * self._ascent(gradient))
            x_adv = self._project(x, x_adv + alpha * (z - x_adv) + (1 - alpha) * momentum)

            if active.all():
                loss, gradient, logits = self._loss_and_gradient(x_adv, y, target)
                now = self.is_successful(logits, y)
            else:
                on = torch.nonzero(active).squeeze(1)
                aimed = None if target is None else target[on]
                loss_on, gradient_on, logits_on = self._loss_and_gradient(x_adv[on], y[on], aimed)
                loss, gradient = loss.clone(), gradient.clone()
                loss[on], gradient[on] = loss_on, gradient_on
                now = torch.zeros_like(success)
                now[on] = self.is_successful(logits_on, y[on])
            x_best_adv[now] = x_adv[now]
            success |= now
            if self.stop_at_success:
                active &= ~now
            history.append(loss)
            improved = loss > loss_best
            x_best[improved] = x_adv[improved]
            gradient_best[improved] = gradient[improved]
            loss_best = torch.where(improved, loss, loss_best)

            since_check += 1
            if since_check == interval:
                # Condition 1: the loss rose in at most rho of the steps since the last check.
                rises = torch.zeros(n, device=x.device)
                for back in range(interval):
                    rises += (history[-1 - back] > history[-2 - back]).float()
                oscillating = rises <= interval * self.rho
                # Condition 2: no halving last time and no better loss since.
                stalled = ~reduced_last_check & (loss_best_last_check >= loss_best)
                halve = oscillating | stalled
                reduced_last_check = halve
                loss_best_last_check = loss_best.clone()
                if halve.any():
                    step_size[halve] /= 2
                    x_adv = x_adv.clone()
                    x_adv[halve] = x_best[halve]
                    gradient[halve] = gradient_best[halve]
                since_check = 0
                interval = max(interval - decrease, min_interval)

        result = torch.where(success.view(view), x_best_adv, x_best)
        return result, loss_best, success


@register("apgd-t")
class APGDT(APGD):
    """APGD-T: APGD with the targeted DLR loss, towards each of the likeliest wrong classes in
    turn (L∞); an image counts as broken once it is misclassified.

    As in AutoAttack: for the 2nd, 3rd, … likeliest classes of the clean image (at most
    ``n_target_classes`` of them), ``n_restarts`` runs each aim at that class, every run only
    on the images still classified correctly. ``y`` holds the true labels: the attack is
    untargeted in effect, its targets are its own. Needs four classes.

    Arguments: ``eps``, ``steps``, ``n_restarts``, ``n_target_classes``, ``rho``, ``seed``.

    >>> attack = ATTACKS["apgd-t"](model, eps=8 / 255, steps=100)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        steps: int = 10,
        n_restarts: int = 1,
        n_target_classes: int = 9,
        rho: float = 0.75,
        targeted: bool = False,
        stop_at_success: bool = False,
        seed: int = 0,
    ) -> None:
        refuse_targeted("apgd-t (it picks its own targets)", targeted)
        super().__init__(
            model, eps=eps, steps=steps, n_restarts=n_restarts, rho=rho, loss="dlr",
            stop_at_success=stop_at_success, seed=seed,
        )  # fmt: skip
        self.n_target_classes = check_count("n_target_classes", n_target_classes)

    def params(self) -> dict[str, object]:
        return {**super().params(), "n_target_classes": self.n_target_classes}

    def _check_classes(self, num_classes: int) -> None:
        if num_classes < 4:
            raise AttackError(
                f"the targeted DLR loss needs 4 classes or more, the model has {num_classes}"
            )

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        result = x.clone()
        if x.shape[0] == 0 or self.eps == 0:
            return result
        with torch.no_grad():
            logits = self.model(x)
        self._check_classes(logits.shape[1])
        found = logits.argmax(1) != y  # already wrong: nothing to do
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        for target in likeliest_wrong_classes(logits, self.n_target_classes):
            for _ in range(self.n_restarts):
                self._restart(x, y, target, generator, result, found, best_loss)
        return result


@register("apgd-l2")
class APGDL2(APGD):
    """APGD on the L2 ball: ``eps`` is the L2 radius in pixel scale, steps go along the
    normalised gradient. Otherwise as ``apgd`` (losses ``ce`` and ``dlr``)."""

    norm = "l2"

    def __init__(self, model: nn.Module, *, eps: float = L2_EPS, **params: Any) -> None:
        super().__init__(model, eps=eps, **params)


@register("apgd-t-l2")
class APGDTL2(APGDT):
    """APGD-T on the L2 ball: ``eps`` is the L2 radius in pixel scale."""

    norm = "l2"

    def __init__(self, model: nn.Module, *, eps: float = L2_EPS, **params: Any) -> None:
        super().__init__(model, eps=eps, **params)
