"""DeepFool (Moosavi-Dezfooli, Fawzi and Frossard 2016, arXiv:1511.04599)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    Attack,
    AttackError,
    check_count,
    check_positive,
    refuse_targeted,
    register,
)

# Added to each step's length so a linearised step lands just past the boundary, as in the
# authors' reference code.
_STEP_MARGIN = 1e-4
_TINY = 1e-12


@register("deepfool")
class DeepFool(Attack):
    """DeepFool L2: step to the nearest linearised decision boundary until misclassified.

    At each step every image still classified as its label ``y`` is linearised around the
    current point; for each candidate class ``k ≠ y`` the distance to the boundary is
    ``|f_k| / ‖w_k‖₂`` with ``f_k = Z_k − Z_y`` and ``w_k = ∇ₓ f_k``; the image moves onto the
    nearest one. The accumulated step is scaled by ``1 + overshoot`` and clipped to [0, 1].
    Each image stops as soon as it is misclassified; images never broken within ``steps``
    keep their last point (usually already close to the boundary).

    Untargeted only: ``targeted=True`` raises :class:`AttackError`.

    Arguments: ``steps`` (maximum iterations), ``overshoot``, ``num_classes`` (``None``: every
    class is a candidate; ``k``: only the ``k`` classes with the highest clean logits),
    ``seed`` (unused: the attack is deterministic). Shapes: ``x`` N×C×H×W in [0, 1], ``y`` N;
    returns N×C×H×W.

    >>> attack = ATTACKS["deepfool"](model, steps=50, overshoot=0.02)
    >>> x_adv = attack(images, labels)
    """

    norm = "l2"
    minimal = True

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 50,
        overshoot: float = 0.02,
        num_classes: int | None = None,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        refuse_targeted("deepfool", targeted)
        super().__init__(model, targeted=False, seed=seed)
        self.steps = check_count("steps", steps)
        self.overshoot = check_positive("overshoot", overshoot, allow_zero=True)
        if num_classes is not None:
            check_count("num_classes", num_classes)
            if num_classes < 2:
                raise AttackError(f"num_classes must be ≥ 2 or None, got {num_classes}")
        self.num_classes = num_classes

    def params(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "overshoot": self.overshoot,
            "num_classes": self.num_classes,
            **super().params(),
        }

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        n = x.shape[0]
        x_adv = x.clone()
        if n == 0:
            return x_adv
        with torch.no_grad():
            clean_logits = self.model(x)
        total_classes = clean_logits.shape[1]
        k = total_classes if self.num_classes is None else min(self.num_classes, total_classes)
        # Candidate classes per image, highest clean logit first (all classes when k = K).
        candidates = clean_logits.argsort(dim=1, descending=True)[:, :k]
        r_total = torch.zeros_like(x)
        active = torch.arange(n, device=x.device)
        for _ in range(self.steps):
            point = x_adv[active].detach().requires_grad_(True)
            logits = self.model(point)
            labels = y[active]
            still = logits.detach().argmax(1) == labels
            if not still.any():
                break
            if not still.all():
                # Drop the images that are already misclassified: they are done.
                active, point = active[still], point[still].detach().requires_grad_(True)
                logits = self.model(point)
                labels = labels[still]
            cand = candidates[active]
            label_logit = logits.gather(1, labels[:, None]).squeeze(1)
            best_distance = torch.full((len(active),), float("inf"), device=x.device)
            best_step = torch.zeros_like(point)
            (label_grad,) = torch.autograd.grad(label_logit.sum(), point, retain_graph=True)
            for column in range(cand.shape[1]):
                classes = cand[:, column]
                other = classes != labels
                if not other.any():
                    continue
                class_logit = logits.gather(1, classes[:, None]).squeeze(1)
                (class_grad,) = torch.autograd.grad(class_logit.sum(), point, retain_graph=True)
                w = class_grad - label_grad
                f = (class_logit - label_logit).detach()
                w_norm = w.flatten(1).norm(dim=1).clamp(min=_TINY)
                distance = f.abs() / w_norm
                closer = other & (distance < best_distance)
                best_distance = torch.where(closer, distance, best_distance)
                step = (distance + _STEP_MARGIN)[:, None] * w.flatten(1) / w_norm[:, None]
                best_step[closer] = step.view_as(w)[closer]
            r_total[active] += best_step
            x_adv[active] = (x[active] + (1 + self.overshoot) * r_total[active]).clamp(0.0, 1.0)
        return x_adv.detach()
