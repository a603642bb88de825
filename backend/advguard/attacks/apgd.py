"""Auto-PGD with the cross-entropy loss, APGD-CE (Croce and Hein 2020, arXiv:2003.01690)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advguard.attacks.base import Attack, AttackError, check_count, check_positive, register

_MOMENTUM = 0.75  # α in the paper: weight of the new step against the previous one


@register("apgd")
class APGD(Attack):
    """APGD-CE: L∞ PGD with momentum and a step size that halves when progress stalls.

    Follows Croce & Hein 2020 (Algorithm 1) and their reference implementation: the step
    size starts at ``2·eps``; at checkpoints (first after ``0.22·steps`` iterations, then at
    shrinking intervals down to ``0.06·steps``) an image's step size is halved and it
    restarts from its best point when the loss rose in at most a fraction ``rho`` of the
    steps since the last checkpoint, or when neither the step size nor the best loss changed
    since then. Steps use momentum 0.75. Each restart begins at a random point of the ball;
    later restarts only run on images not yet broken. The result per image is the last
    adversarial point found, or the point of highest loss when none was found. The loss is
    the cross-entropy of ``y``, ascended (untargeted) or descended towards the target
    (``targeted=True``).

    Arguments: ``eps`` (L∞ budget in pixel scale), ``steps``, ``n_restarts``, ``rho``,
    ``targeted``, ``seed``. Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N; returns N×C×H×W.

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
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.n_restarts = check_count("n_restarts", n_restarts)
        rho = check_positive("rho", rho, allow_zero=True)
        if rho > 1:
            raise AttackError(f"rho must lie in [0, 1], got {rho}")
        self.rho = rho

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "steps": self.steps,
            "n_restarts": self.n_restarts,
            "rho": self.rho,
            **super().params(),
        }

    def _loss_and_gradient(self, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-image loss to maximise, its input gradient, and the logits."""
        point = x_adv.detach().requires_grad_(True)
        logits = self.model(point)
        loss = F.cross_entropy(logits, y, reduction="none")
        if self.targeted:
            loss = -loss
        (gradient,) = torch.autograd.grad(loss.sum(), point)
        return loss.detach(), gradient, logits.detach()

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        result = x.clone()
        if x.shape[0] == 0 or self.eps == 0:
            return result
        found = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        best_loss = torch.full((x.shape[0],), float("-inf"), device=x.device)
        for _ in range(self.n_restarts):
            todo = torch.nonzero(~found).squeeze(1)
            if todo.numel() == 0:
                break
            adv, loss, success = self._attack_once(x[todo], y[todo], generator)
            # Success beats any loss; among failures keep the restart with the highest loss.
            better = success | (~success & (loss > best_loss[todo]))
            result[todo[better]] = adv[better]
            best_loss[todo[better]] = loss[better]
            found[todo[success]] = True
        return result

    def _attack_once(
        self, x: Tensor, y: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One APGD run from a random start: (result, its best loss, success per image)."""
        n, eps = x.shape[0], self.eps
        lower = (x - eps).clamp(min=0.0)
        upper = (x + eps).clamp(max=1.0)
        view = (-1,) + (1,) * (x.ndim - 1)
        # Random start on the ball's surface direction, as in the reference code.
        noise = 2 * torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) - 1
        scale = noise.flatten(1).abs().amax(1).clamp(min=1e-12).view(view)
        x_adv = torch.clamp(x + eps * noise / scale, lower, upper)

        loss, gradient, logits = self._loss_and_gradient(x_adv, y)
        success = self.is_successful(logits, y)
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
            momentum = x_adv - x_previous
            x_previous = x_adv
            alpha = _MOMENTUM if i > 0 else 1.0
            z = torch.clamp(x_adv + step_size * gradient.sign(), lower, upper)
            x_adv = torch.clamp(x_adv + alpha * (z - x_adv) + (1 - alpha) * momentum, lower, upper)

            loss, gradient, logits = self._loss_and_gradient(x_adv, y)
            now = self.is_successful(logits, y)
            x_best_adv[now] = x_adv[now]
            success |= now
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
