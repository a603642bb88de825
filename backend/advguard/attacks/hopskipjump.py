"""HopSkipJump (Chen, Jordan and Wainwright 2020, arXiv:1904.02144), L2: a decision-based
attack. It asks the model for its top-1 label only, as a user of a classification API can,
and counts every image it asks about."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from advguard.attacks.base import (
    Attack,
    check_count,
    check_positive,
    per_image_l2,
    refuse_targeted,
    register,
)

_TINY = 1e-12
_CHUNK = 1024  # images per model call when estimating a gradient (bounds the memory)


@register("hopskipjump")
class HopSkipJump(Attack):
    """HopSkipJump L2: walks along the decision boundary towards the clean image using only
    the model's top-1 labels.

    It starts from uniform noise the model already gets wrong, found by trying up to
    ``init_tries`` noise images (then the batch's other images), and moves it to the
    boundary by a binary search on the line to the clean image. Each of up to ``steps``
    iterations then estimates the boundary's normal from the labels of ``init_evals·√t`` (at
    most ``max_evals``) random points around the boundary point, steps along it with a
    geometrically shrinking step until the point is adversarial again, and returns to the
    boundary. An image stops when its next iteration would exceed ``max_queries`` label
    queries. The result is the closest adversarial image found (the image itself when none
    was); after a call, ``attack.queries`` holds the number of label queries each image
    used. Untargeted only.

    Arguments: ``max_queries`` (per image), ``steps``, ``init_evals``, ``max_evals``,
    ``init_tries``, ``gamma`` (binary-search precision, ``θ = γ / d^{3/2}``), ``seed``.

    >>> attack = ATTACKS["hopskipjump"](model, max_queries=1000)
    >>> x_adv = attack(images, labels)
    """

    norm = "l2"
    minimal = True

    def __init__(
        self,
        model: nn.Module,
        *,
        max_queries: int = 1000,
        steps: int = 40,
        init_evals: int = 100,
        max_evals: int = 1000,
        init_tries: int = 100,
        gamma: float = 1.0,
        targeted: bool = False,
        seed: int = 0,
    ) -> None:
        refuse_targeted("hopskipjump", targeted)
        super().__init__(model, seed=seed)
        self.max_queries = check_count("max_queries", max_queries)
        self.steps = check_count("steps", steps)
        self.init_evals = check_count("init_evals", init_evals)
        self.max_evals = check_count("max_evals", max_evals)
        self.init_tries = check_count("init_tries", init_tries)
        self.gamma = check_positive("gamma", gamma)
        self.queries: Tensor | None = None
        self.history: list[list[tuple[Tensor, Tensor]]] = []
        """Per call, after the start and after every iteration: each image's queries so far
        and the L∞ size of the adversarial image it had then (∞ while it had none)."""

    def params(self) -> dict[str, object]:
        return {
            "max_queries": self.max_queries,
            "steps": self.steps,
            "init_evals": self.init_evals,
            "max_evals": self.max_evals,
            "init_tries": self.init_tries,
            "gamma": self.gamma,
            **super().params(),
        }

    # --- the only access to the model: labels, counted --------------------------------

    @torch.no_grad()
    def _wrong(self, images: Tensor, y: Tensor) -> Tensor:
        """Whether the model's top-1 label of each image differs from ``y`` (uncounted:
        callers count the queries)."""
        return self.model(images).argmax(1) != y

    def _is_adversarial(self, images: Tensor, y: Tensor, asking: Tensor) -> Tensor:
        """:meth:`_wrong` for the images whose ``asking`` is true, one query each; the
        others are not sent (false)."""
        answer = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        index = torch.nonzero(asking).squeeze(1)
        if index.numel():
            answer[index] = self._wrong(images[index], y[index])
            assert self.queries is not None
            self.queries[index] += 1
        return answer

    def linf_within_queries(self, budget: int) -> Tensor:
        """For every image of every call so far, in order: the L∞ size of the smallest
        adversarial image the attack had seen within ``budget`` queries (∞ where it had
        none): what an attacker allowed ``budget`` label queries can keep."""
        sizes = []
        for snapshots in self.history:
            if not snapshots:
                continue
            size = torch.full_like(snapshots[0][1], float("inf"))
            for queries, linf in snapshots:
                size = torch.where(queries <= budget, torch.minimum(size, linf), size)
            sizes.append(size)
        return torch.cat(sizes) if sizes else torch.empty(0)

    def _record(self, x: Tensor, adversarial: Tensor, found: Tensor) -> None:
        assert self.queries is not None
        linf = (adversarial - x).flatten(1).abs().amax(1)
        linf = torch.where(found, linf, torch.full_like(linf, float("inf")))
        self.history[-1].append((self.queries.clone().cpu(), linf.cpu()))

    # --- the attack -------------------------------------------------------------------

    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        n = x.shape[0]
        self.queries = torch.zeros(n, dtype=torch.long, device=x.device)
        self.history.append([])
        if n == 0:
            return x.clone()
        dimensions = x[0].numel()
        theta = self.gamma / dimensions**1.5
        everyone = torch.ones(n, dtype=torch.bool, device=x.device)
        start, found = self._initial_points(x, y, generator, everyone)
        if not found.any():
            self._record(x, x, found)
            return x.clone()
        adversarial = self._to_boundary(x, start, y, found, theta)
        self._record(x, adversarial, found)
        distance = per_image_l2(adversarial - x).flatten()
        for step in range(1, self.steps + 1):
            evals = min(int(self.init_evals * math.sqrt(step)), self.max_evals)
            # An iteration costs its gradient estimate, up to ~25 step halvings and the
            # binary search: stop images whose next one would pass their budget.
            search = math.ceil(math.log2(1 / theta)) + 1
            active = found & (self.queries + evals + 25 + search <= self.max_queries)
            if not active.any():
                break
            delta = math.sqrt(dimensions) * theta * distance if step > 1 else None
            normal = self._boundary_normal(adversarial, y, evals, delta, active, generator)
            # Geometric step search along the normal until the point is adversarial again.
            size = (distance / math.sqrt(step)).view((-1,) + (1,) * (x.ndim - 1))
            moved = adversarial.clone()
            pending = active.clone()
            for _ in range(25):
                candidate = (adversarial + size * normal).clamp(0, 1)
                ok = self._is_adversarial(candidate, y, pending)
                moved[ok] = candidate[ok]
                pending &= ~ok
                if not pending.any():
                    break
                size = torch.where(pending.view_as(size), size / 2, size)
            improved = active & ~pending
            adversarial = torch.where(
                improved.view((-1,) + (1,) * (x.ndim - 1)),
                self._to_boundary(x, moved, y, improved, theta),
                adversarial,
            )
            distance = per_image_l2(adversarial - x).flatten()
            self._record(x, adversarial, found)
        return torch.where(found.view((-1,) + (1,) * (x.ndim - 1)), adversarial, x)

    def _initial_points(
        self, x: Tensor, y: Tensor, generator: torch.Generator, asking: Tensor
    ) -> tuple[Tensor, Tensor]:
        """A starting point the model gets wrong, per image (and which images have one):
        uniform noise, or, where the model calls all noise the image's class, another image
        of the batch (it may well be of another class)."""
        start = x.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for _ in range(self.init_tries):
            pending = asking & ~found
            if not pending.any():
                return start, found
            noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            hit = self._is_adversarial(noise, y, pending)
            start[hit] = noise[hit]
            found |= hit
        for shift in range(1, len(x)):
            pending = asking & ~found
            if not pending.any():
                break
            other = x.roll(shift, 0)
            hit = self._is_adversarial(other, y, pending)
            start[hit] = other[hit]
            found |= hit
        return start, found

    def _to_boundary(
        self, x: Tensor, adversarial: Tensor, y: Tensor, asking: Tensor, theta: float
    ) -> Tensor:
        """Binary search on the segment from ``x`` (clean) to ``adversarial``, down to a
        blend precision of ``theta``: the point just on the adversarial side."""
        view = (-1,) + (1,) * (x.ndim - 1)
        low = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        high = torch.ones_like(low)
        while bool(((high - low) > theta)[asking].any()):
            middle = (low + high) / 2
            blend = x + middle.view(view) * (adversarial - x)
            searching = asking & ((high - low) > theta)
            hit = self._is_adversarial(blend, y, searching)
            high = torch.where(searching & hit, middle, high)
            low = torch.where(searching & ~hit, middle, low)
        return x + high.view(view) * (adversarial - x)

    def _boundary_normal(
        self,
        boundary: Tensor,
        y: Tensor,
        evals: int,
        delta: Tensor | None,
        asking: Tensor,
        generator: torch.Generator,
    ) -> Tensor:
        """Monte Carlo estimate of the direction towards the adversarial side at
        ``boundary`` from the labels of ``evals`` random points around each image, at
        distance ``delta`` (0.1 at first), with the mean decision as a baseline."""
        index = torch.nonzero(asking).squeeze(1)
        normal = torch.zeros_like(boundary)
        radius = (
            torch.full((len(boundary),), 0.1, device=boundary.device)
            if delta is None
            else delta.clamp_min(_TINY)
        )
        for i in index.tolist():
            directions = torch.randn(
                (evals, *boundary.shape[1:]), generator=generator, device=boundary.device
            ).to(boundary.dtype)
            directions /= per_image_l2(directions) + _TINY
            points = (boundary[i] + radius[i] * directions).clamp(0, 1)
            directions = (points - boundary[i]) / radius[i]
            label = y[i].expand(min(evals, _CHUNK))
            decisions = torch.cat(
                [self._wrong(chunk, label[: len(chunk)]) for chunk in points.split(_CHUNK)]
            )
            assert self.queries is not None
            self.queries[i] += evals
            signs = decisions.to(boundary.dtype) * 2 - 1
            mean = signs.mean()
            weights = signs if mean.abs() == 1 else signs - mean
            estimate = (weights.view((-1,) + (1,) * (boundary.ndim - 1)) * directions).mean(0)
            normal[i] = estimate / (estimate.norm() + _TINY)
        return normal
