"""Square Attack, L∞ (Andriushchenko, Croce, Flammarion and Hein 2020, arXiv:1912.00049)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advguard.attacks.base import Attack, AttackError, check_count, check_positive, register

# p schedule of the reference code, written for 10 000 queries and rescaled to n_queries:
# (upper end of the range in 1/10 000 of the budget, divisor of p_init).
_P_SCHEDULE = (
    (10, 1),
    (50, 2),
    (200, 4),
    (500, 8),
    (1000, 16),
    (2000, 32),
    (4000, 64),
    (6000, 128),
    (8000, 256),
    (10000, 512),
)


def p_selection(p_init: float, iteration: int, n_queries: int) -> float:
    """Fraction of pixels the square covers at ``iteration`` (piecewise-constant decay)."""
    scaled = int(iteration / n_queries * 10000)
    for end, divisor in _P_SCHEDULE:
        if scaled <= end:
            return p_init / divisor
    return p_init


@register("square")
class Square(Attack):
    """Square Attack L∞: black-box random search over square-shaped ±eps updates.

    Uses only the model's outputs (every query runs under ``torch.no_grad``), never its
    gradients. Starts from vertical stripes of ±``eps``; each iteration proposes, for every
    image still not broken, a new value ±``eps`` per channel on a random square window whose
    side shrinks with the schedule of ``p_init``, and keeps it when the margin loss falls.
    Untargeted margin: ``Z_y − max_{j≠y} Z_j``; targeted: ``max_{j≠t} Z_j − Z_t``. An image
    stops as soon as it is misclassified (or reaches its target), so it costs at most
    ``n_queries`` model evaluations, the starting point included. After a call,
    ``attack.queries`` holds the number of queries each image used.

    Arguments: ``eps`` (L∞ budget in pixel scale), ``n_queries`` (query budget per image),
    ``p_init`` (initial fraction of pixels changed), ``targeted``, ``seed``. Shapes: ``x``
    N×C×H×W in [0, 1], ``y`` N; returns N×C×H×W.

    >>> attack = ATTACKS["square"](model, eps=8 / 255, n_queries=1000)
    >>> x_adv = attack(images, labels)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float = 8 / 255,
        n_queries: int = 1000,
        p_init: float = 0.8,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(model, targeted=targeted, seed=seed)
        self.eps = check_positive("eps", eps, allow_zero=True)
        self.n_queries = check_count("n_queries", n_queries)
        p_init = check_positive("p_init", p_init)
        if p_init > 1:
            raise AttackError(f"p_init must lie in (0, 1], got {p_init}")
        self.p_init = p_init
        self.queries: Tensor | None = None

    def params(self) -> dict[str, object]:
        return {
            "eps": self.eps,
            "n_queries": self.n_queries,
            "p_init": self.p_init,
            **super().params(),
        }

    def _margin(self, logits: Tensor, y: Tensor) -> Tensor:
        """Margin loss to minimise; ≤ 0 roughly means success."""
        own = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return other - own if self.targeted else own - other

    def _query(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(x)
        return self._margin(logits, y), self.is_successful(logits, y)

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        with torch.no_grad():
            return self._search(x, y, generator)

    def _search(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        n, channels, height, width = x.shape
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        self.queries = queries
        if n == 0 or self.eps == 0:
            return x.clone()
        eps, device = self.eps, x.device
        lower = (x - eps).clamp(min=0.0)
        upper = (x + eps).clamp(max=1.0)

        def random_sign(shape: tuple[int, ...]) -> Tensor:
            bits = torch.randint(0, 2, shape, generator=generator, device=device)
            return bits.to(x.dtype).mul_(2).sub_(1)

        stripes = random_sign((n, channels, 1, width))
        x_best = torch.clamp(x + eps * stripes, lower, upper)
        margin, success = self._query(x_best, y)
        queries += 1
        side_limit = max(min(height, width) - 1, 1)
        for iteration in range(self.n_queries - 1):
            todo = torch.nonzero(~success).squeeze(1)
            if todo.numel() == 0:
                break
            p = p_selection(self.p_init, iteration, self.n_queries)
            side = max(round(math.sqrt(p * height * width)), 1)
            side = min(side, side_limit)
            top = int(torch.randint(0, height - side + 1, (1,), generator=generator, device=device))
            left = int(torch.randint(0, width - side + 1, (1,), generator=generator, device=device))
            window = (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
            current = x_best[todo]
            low, high = lower[todo][window], upper[todo][window]
            base = x[todo][window]
            signs = random_sign((len(todo), channels, 1, 1))
            proposal = torch.clamp(base + eps * signs, low, high)
            # A proposal equal to the current window wastes a query: flip its signs instead.
            same = (proposal - current[window]).abs().flatten(1).amax(1) < 1e-7
            if same.any():
                flipped = torch.clamp(base + eps * -signs, low, high)
                proposal = torch.where(same.view(-1, 1, 1, 1), flipped, proposal)
            candidate = current.clone()
            candidate[window] = proposal
            new_margin, new_success = self._query(candidate, y[todo])
            queries[todo] += 1
            improved = new_margin < margin[todo]
            keep = todo[improved]
            x_best[keep] = candidate[improved]
            margin[keep] = new_margin[improved]
            success[todo] = success[todo] | (new_success & improved)
        return x_best
