"""Square Attack, L∞ and L2 (Andriushchenko, Croce, Flammarion and Hein 2020, arXiv:1912.00049)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    L2_EPS,
    Attack,
    AttackError,
    check_count,
    check_positive,
    l2_direction,
    per_image_l2,
    register,
)

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


def random_signs(shape: tuple[int, ...], generator: torch.Generator, like: Tensor) -> Tensor:
    """±1 at random, with the dtype and device of ``like``."""
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype).mul_(2).sub_(1)


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
        queries = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        self.queries = queries
        if x.shape[0] == 0 or self.eps == 0:
            return x.clone()
        with torch.no_grad():
            return self._search(x, y, generator, queries)

    def _search(self, x: Tensor, y: Tensor, generator: torch.Generator, queries: Tensor) -> Tensor:
        """The random search, counting each image's model calls in ``queries``."""
        n, channels, height, width = x.shape
        eps, device = self.eps, x.device
        lower = (x - eps).clamp(min=0.0)
        upper = (x + eps).clamp(max=1.0)

        def random_sign(shape: tuple[int, ...]) -> Tensor:
            return random_signs(shape, generator, x)

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


def _nested_squares(height: int, width: int, device: torch.device) -> Tensor:
    """Centred squares of growing size stacked with weights 1/k² (the bright centre of a
    Square-L2 window half), scaled to unit L2 norm."""
    pattern = torch.zeros(height, width, device=device)
    centre_row, centre_column = height // 2, width // 2
    for k in range(max(centre_row, centre_column) + 1):
        rows = slice(max(centre_row - k, 0), min(centre_row + k + 1, height))
        columns = slice(max(centre_column - k, 0), min(centre_column + k + 1, width))
        pattern[rows, columns] += 1.0 / (k + 1) ** 2
    return pattern / pattern.norm().clamp_min(1e-12)


def window_pattern(side: int, transpose: bool, device: torch.device) -> Tensor:
    """The Square-L2 update of a ``side``×``side`` window: nested squares, positive in one
    half and negative in the other, unit L2 norm (transposed on request)."""
    pattern = torch.cat(
        [_nested_squares(side // 2, side, device), -_nested_squares(side - side // 2, side, device)]
    )
    pattern = pattern / pattern.norm().clamp_min(1e-12)
    return pattern.T if transpose else pattern


@register("square-l2")
class SquareL2(Square):
    """Square Attack L2: black-box random search that moves perturbation mass between two
    square windows while keeping the image's L2 distance at ``eps``.

    Starts from a grid of windows (side a fifth of the image) each holding the window
    pattern (nested squares, positive in one half and negative in the other) with a random
    sign per channel, scaled to ``eps``. Each iteration picks two random windows of the
    scheduled side, empties the second and puts into the first a fresh pattern plus what
    the first held, scaled to keep the total L2 norm, and keeps the result when the margin
    loss falls. Otherwise as ``square`` (queries counted in ``attack.queries``).

    Arguments: ``eps`` (L2 radius in pixel scale), ``n_queries``, ``p_init``, ``targeted``,
    ``seed``.
    """

    norm = "l2"

    def __init__(self, model: nn.Module, *, eps: float = L2_EPS, **params: Any) -> None:
        super().__init__(model, eps=eps, **params)

    def _search(self, x: Tensor, y: Tensor, generator: torch.Generator, queries: Tensor) -> Tensor:
        n, channels, height, width = x.shape
        device = x.device

        def coin() -> bool:
            return bool(torch.randint(0, 2, (1,), generator=generator, device=device))

        def random_sign(count: int) -> Tensor:
            return random_signs((count, channels, 1, 1), generator, x)

        def position(side: int, extent: int) -> int:
            drawn = torch.randint(0, extent - side + 1, (1,), generator=generator, device=device)
            return int(drawn)

        start = torch.zeros_like(x)
        block = max(height // 5, 1)
        offset = (height - 5 * block) // 2
        for top in range(offset, height - block + 1, block):
            for left in range(offset, width - block + 1, block):
                pattern = window_pattern(block, coin(), device).to(x.dtype)
                start[:, :, top : top + block, left : left + block] += pattern * random_sign(n)
        x_best = (x + self.eps * l2_direction(start)).clamp(0, 1)
        margin, success = self._query(x_best, y)
        queries += 1
        for iteration in range(self.n_queries - 1):
            todo = torch.nonzero(~success).squeeze(1)
            if todo.numel() == 0:
                break
            p = p_selection(self.p_init, iteration, self.n_queries)
            side = max(round(math.sqrt(p * height * width)), 3)
            side = min(side + (side % 2 == 0), min(height, width))
            first = (position(side, height), position(side, width))
            second = (position(side, height), position(side, width))
            windows = [
                (slice(None), slice(None), slice(top, top + side), slice(left, left + side))
                for top, left in (first, second)
            ]
            current, base = x_best[todo], x[todo]
            delta = current - base
            both = torch.zeros_like(delta)
            for window in windows:
                both[window] = 1.0
            total = per_image_l2(delta)
            in_windows = per_image_l2(delta * both)
            held = delta[windows[0]]
            held_norm = held.flatten(2).norm(dim=2)[..., None, None]
            fresh = window_pattern(side, coin(), device).to(x.dtype) * random_sign(len(todo))
            update = fresh + held / (held_norm + 1e-12)
            # Keep the image at eps: what the two windows held, plus whatever was unused.
            budget = ((self.eps**2 - total**2).clamp_min(0) / channels + in_windows**2).sqrt()
            update = update / (update.flatten(2).norm(dim=2)[..., None, None] + 1e-12) * budget
            delta[windows[1]] = 0.0
            delta[windows[0]] = update
            candidate = (base + self.eps * l2_direction(delta)).clamp(0, 1)
            new_margin, new_success = self._query(candidate, y[todo])
            queries[todo] += 1
            improved = (new_margin < margin[todo]) | new_success
            keep = todo[improved]
            x_best[keep] = candidate[improved]
            margin[keep] = new_margin[improved]
            success[todo] = success[todo] | (new_success & improved)
        return x_best
