"""Carlini & Wagner L2 attack (Carlini and Wagner 2017, arXiv:1608.04644)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advguard.attacks.base import Attack, AttackError, check_count, check_positive, register

# tanh-space start: atanh(±1) is infinite and would freeze pixels at exactly 0 or 1.
_TANH_MARGIN = 1e-6
_NO_UPPER_BOUND = 1e10
ABORT_MODES = ("image", "batch", "never")


@register("cw")
class CW(Attack):
    """Carlini & Wagner L2: minimise ``‖x' − x‖²₂ + c·f(x')`` in tanh space with Adam.

    ``f = max(Z_y − max_{j≠y} Z_j, −κ)`` (untargeted; mirrored for targeted) on the logits
    ``Z``. A per-image binary search over ``c`` keeps the smallest successful perturbation.
    Images never broken are returned unchanged.

    Early abort, checked every ``steps // 10`` steps: ``"image"`` (default) drops each image
    whose loss stopped falling from the batch, so later steps cost only what is still
    running; ``"batch"`` stops every image once the batch's summed loss stops falling, as
    Carlini's reference code and torchattacks do (cheaper, larger perturbations);
    ``"never"`` runs every step.

    Arguments: ``c`` (initial trade-off constant), ``kappa`` (confidence margin κ),
    ``steps`` (Adam steps per search step), ``lr``, ``binary_search_steps``,
    ``abort_early``, ``targeted``, ``seed``. Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N;
    returns N×C×H×W.

    >>> attack = ATTACKS["cw"](model, c=1.0, steps=50)
    >>> x_adv = attack(images, labels)
    """

    norm = "l2"
    minimal = True

    def __init__(
        self,
        model: nn.Module,
        *,
        c: float = 1.0,
        kappa: float = 0.0,
        steps: int = 50,
        lr: float = 0.01,
        binary_search_steps: int = 5,
        abort_early: str = "image",
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.c = check_positive("c", c)
        self.kappa = check_positive("kappa", kappa, allow_zero=True)
        self.steps = check_count("steps", steps)
        self.lr = check_positive("lr", lr)
        self.binary_search_steps = check_count("binary_search_steps", binary_search_steps)
        if abort_early not in ABORT_MODES:
            raise AttackError(
                f"abort_early must be one of {', '.join(ABORT_MODES)}, got {abort_early!r}"
            )
        self.abort_early = abort_early

    def params(self) -> dict[str, object]:
        return {
            "c": self.c,
            "kappa": self.kappa,
            "steps": self.steps,
            "lr": self.lr,
            "binary_search_steps": self.binary_search_steps,
            "abort_early": self.abort_early,
            **super().params(),
        }

    def _margin(self, logits: Tensor, y: Tensor) -> Tensor:
        """How far the image is past the decision boundary (> κ means success)."""
        real = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return real - other if self.targeted else other - real

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        n = x.shape[0]
        w_start = torch.atanh((2 * x - 1).clamp(-1 + _TANH_MARGIN, 1 - _TANH_MARGIN))
        best_adv = x.clone()
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        c = torch.full((n,), self.c, device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), _NO_UPPER_BOUND, device=x.device)
        for _ in range(self.binary_search_steps):
            succeeded = self._optimise(x, y, w_start, c, best_adv, best_l2)
            # Success: the boundary lies at or below c, so search lower; else raise c.
            upper = torch.where(succeeded, torch.minimum(upper, c), upper)
            lower = torch.where(succeeded, lower, torch.maximum(lower, c))
            bounded = upper < _NO_UPPER_BOUND
            c = torch.where(bounded, (lower + upper) / 2, c * 10)
        return best_adv

    def _optimise(
        self, x: Tensor, y: Tensor, w_start: Tensor, c: Tensor, best_adv: Tensor, best_l2: Tensor
    ) -> Tensor:
        """One search step: Adam on every image's ``w``; updates ``best_*`` in place.

        Returns which images succeeded at least once in this step.
        """
        succeeded = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        active = torch.arange(x.shape[0], device=x.device)  # positions still being optimised
        w, x_act, y_act, c_act = w_start.clone(), x, y, c
        first_moment, second_moment = torch.zeros_like(w), torch.zeros_like(w)
        beta1, beta2, adam_eps = 0.9, 0.999, 1e-8
        check_every = max(self.steps // 10, 1)
        previous_loss = torch.full((x.shape[0],), float("inf"), device=x.device)
        previous_total = float("inf")
        dims = tuple(range(1, x.ndim))
        for step in range(1, self.steps + 1):
            w.requires_grad_(True)
            x_adv = (torch.tanh(w) + 1) / 2
            l2 = (x_adv - x_act).pow(2).sum(dims)
            margin = self._margin(self.model(x_adv), y_act)
            loss = l2 + c_act * (-margin).clamp(min=-self.kappa)
            (gradient,) = torch.autograd.grad(loss.sum(), w)
            w = w.detach()
            with torch.no_grad():
                x_adv = x_adv.detach()
                success = margin.detach() > self.kappa
                improved = success & (l2.detach() < best_l2[active])
                if improved.any():
                    positions = active[improved]
                    best_l2[positions] = l2.detach()[improved]
                    best_adv[positions] = x_adv[improved]
                succeeded[active[success]] = True
                first_moment.mul_(beta1).add_(gradient, alpha=1 - beta1)
                second_moment.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
                step_size = self.lr * (1 - beta2**step) ** 0.5 / (1 - beta1**step)
                w.addcdiv_(first_moment, second_moment.sqrt().add_(adam_eps), value=-step_size)
            # Check at steps 1, 1 + k, 1 + 2k, …: the first check records the starting loss.
            if self.abort_early == "never" or (step - 1) % check_every != 0:
                continue
            loss = loss.detach()
            if self.abort_early == "batch":
                total = float(loss.sum())
                if total > previous_total * 0.9999:
                    break
                previous_total = total
                continue
            keep = loss <= previous_loss[active] * 0.9999
            previous_loss[active] = loss
            if not keep.all():
                if not keep.any():
                    break
                # Drop images that stopped improving: later steps run on a smaller batch.
                active, w, x_act, y_act, c_act = (
                    active[keep],
                    w[keep],
                    x_act[keep],
                    y_act[keep],
                    c_act[keep],
                )
                first_moment, second_moment = first_moment[keep], second_moment[keep]
        return succeeded
