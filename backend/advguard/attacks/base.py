"""What every attack shares: input checks, evaluation mode, frozen weights, seeding, registry."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttackError(ValueError):
    """Invalid attack parameters or inputs; the message says which and why."""


ATTACKS: dict[str, type[Attack]] = {}
"""Lower-case attack name -> attack class (contract: ``ATTACKS["pgd"](model)`` works)."""


def register(name: str):  # type: ignore[no-untyped-def]
    """Class decorator that adds an attack to :data:`ATTACKS` under ``name``."""

    def decorate(cls: type[Attack]) -> type[Attack]:
        cls.name = name
        ATTACKS[name] = cls
        return cls

    return decorate


def attack_class(name: str) -> type[Attack]:
    """The attack class registered as ``name``, or :class:`AttackError` naming the known ones."""
    if name not in ATTACKS:
        raise AttackError(f"unknown attack {name!r}; available: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name]


def create_attack(name: str, model: nn.Module, **params: Any) -> Attack:
    """Build the attack registered as ``name``, turning bad names or parameters into
    :class:`AttackError` (for CLI and API callers that take them from users)."""
    cls = attack_class(name)
    try:
        return cls(model, **params)
    except TypeError as error:
        raise AttackError(f"bad parameter for {name}: {error}") from error


def create_budget_attack(
    name: str, model: nn.Module, eps: float | None, norm: str = "linf", **params: Any
) -> Attack:
    """:func:`create_attack` set to the budget ``eps`` in ``norm`` (L∞ unless told) by the
    attack's own rule (:meth:`Attack.budget_params`), with ``params`` on top: the one way
    the set builder, the live test and the robustness curves configure an attack for a
    budget."""
    budget = attack_class(name).budget_params(eps, norm, **params)
    return create_attack(name, model, **{**budget, **params})


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``value`` or raise :class:`AttackError` if it is negative (or zero)."""
    if not isinstance(value, int | float) or value != value:  # NaN fails value == value
        raise AttackError(f"{name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise AttackError(f"{name} must be {bound}, got {value}")
    return float(value)


def likeliest_wrong_classes(logits: Tensor, count: int) -> list[Tensor]:
    """The targets of AutoAttack's targeted attacks: for each image, its 2nd, 3rd, …
    likeliest classes by ``logits`` (at most ``count`` of them); for an image the model
    classifies correctly, every class but the true one, likeliest first."""
    ranked = logits.argsort(dim=1, descending=True)
    return [ranked[:, rank] for rank in range(1, min(count, logits.shape[1] - 1) + 1)]


def refuse_targeted(attack: str, targeted: bool) -> None:
    """Raise :class:`AttackError` for ``targeted=True`` on an attack that is untargeted
    (or picks its own targets)."""
    if targeted:
        raise AttackError(f"{attack} is untargeted only; targeted=True is not supported")


def check_count(name: str, value: int) -> int:
    """Return ``value`` or raise :class:`AttackError` unless it is a whole number ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AttackError(f"{name} must be a whole number ≥ 1, got {value!r}")
    return value


@contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """Evaluation mode with weight gradients off for the duration, then restore both.

    Freezing the weights makes the backward pass compute the input gradient only, which is
    all an attack needs (about a third less work per step than ``loss.backward()``).
    """
    was_training = model.training
    parameters = list(model.parameters())
    needed_grad = [p.requires_grad for p in parameters]
    model.eval()
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(parameters, needed_grad, strict=True):
            parameter.requires_grad_(flag)
        model.train(was_training)


STEP_FACTOR = 2.5
"""Step size for a budget: ``STEP_FACTOR·ε/steps`` (Madry et al. 2018)."""


class Attack(ABC):
    """Base class: ``attack = Attack(model, **params)``; ``x_adv = attack(x, y)``.

    ``x`` is float ``N×C×H×W`` in [0, 1]; ``y`` holds the true labels, or the target labels
    when ``targeted=True``. The result has the shape, dtype and device of ``x`` and lies in
    [0, 1]. The same ``seed`` gives the same result.
    """

    name: ClassVar[str] = "attack"
    norm: ClassVar[str] = "linf"
    """The norm the perturbation is measured (and, unless :attr:`minimal`, bounded) in."""
    minimal: ClassVar[bool] = False
    """Whether the attack looks for the smallest perturbation that fools the model (CW,
    DeepFool, HopSkipJump) instead of the strongest within a given budget: it runs once,
    and an image counts as broken at every budget its perturbation fits in."""

    def __init__(self, model: nn.Module, *, targeted: bool = False, seed: int = 0) -> None:
        if not isinstance(model, nn.Module):
            raise AttackError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.targeted = bool(targeted)
        self.seed = int(seed)

    @classmethod
    def budget_params(
        cls, eps: float | None, norm: str = "linf", **params: Any
    ) -> dict[str, object]:
        """The parameters that set this attack to the budget ``eps`` measured in ``norm``
        (``"linf"`` or ``"l2"``), given the other ``params`` the caller sets: ``{"eps": eps}``
        for an attack bounded in that norm and, where it takes a step, Madry et al.'s
        ``2.5·ε/steps`` (ε/4 at the default 10 steps), so that every budget gets a step
        scaled to it. Nothing when ``eps`` is ``None``, for an attack bounded in the other
        norm, or for a :attr:`minimal` one (its perturbation size is found, not given)."""
        if eps is None or cls.minimal or cls.norm != norm:
            return {}
        budget: dict[str, object] = {"eps": eps}
        defaults = attack_defaults(cls)
        steps = params.get("steps", defaults.get("steps"))
        # Bad steps are left for the attack itself to refuse, with its own message.
        if "alpha" in defaults and isinstance(steps, int) and steps >= 1:
            budget["alpha"] = eps * (STEP_FACTOR / steps)  # 2.5/10 is exactly 1/4
        return budget

    def params(self) -> dict[str, object]:
        """The attack's parameters, as recorded in manifests and reports."""
        return {"targeted": self.targeted, "seed": self.seed}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        self._check_inputs(x, y)
        device = self._model_device()
        with attack_mode(self.model):
            images, labels = x.detach().to(device), y.detach().to(device)
            self._check_labels(images, labels)
            generator = torch.Generator(device=device).manual_seed(self.seed)
            x_adv = self._run(images, labels, generator)
        return x_adv.detach().to(device=x.device, dtype=x.dtype)

    @abstractmethod
    def _run(self, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
        """The attack itself, on validated inputs on the model's device."""

    def _model_device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        if parameter is None:
            buffer = next(self.model.buffers(), None)
            return buffer.device if buffer is not None else torch.device("cpu")
        return parameter.device

    def _check_inputs(self, x: Tensor, y: Tensor) -> None:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise AttackError("x must be a floating-point tensor")
        if x.ndim != 4:
            raise AttackError(f"x must be N×C×H×W, got shape {tuple(x.shape)}")
        if not isinstance(y, Tensor) or y.dtype not in (
            torch.int64,
            torch.int32,
            torch.int16,
            torch.uint8,
        ):
            raise AttackError("y must be an integer tensor of class indices")
        if y.shape != (x.shape[0],):
            raise AttackError(f"y must have shape ({x.shape[0]},), got {tuple(y.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1 or torch.isnan(x).any()):
            raise AttackError("x must lie in [0, 1] (normalisation belongs inside the model)")
        if y.numel() and y.min() < 0:
            raise AttackError(f"labels must be ≥ 0, got {int(y.min())}")

    def _check_labels(self, x: Tensor, y: Tensor) -> None:
        """Refuse labels that are not class indices of the model (one-image probe)."""
        if not y.numel():
            return
        with torch.no_grad():
            num_classes = self.model(x[:1]).shape[1]
        if int(y.max()) >= num_classes:
            raise AttackError(
                f"label {int(y.max())} is out of range for a model with {num_classes} classes"
            )

    def is_successful(self, logits: Tensor, y: Tensor) -> Tensor:
        """Per-image success: misclassified (untargeted) or classified as ``y`` (targeted)."""
        predictions = logits.argmax(1)
        return predictions == y if self.targeted else predictions != y


def input_gradient(model: nn.Module, x: Tensor, y: Tensor, targeted: bool) -> tuple[Tensor, Tensor]:
    """Gradient of the attack objective w.r.t. ``x`` (ascent direction), and the logits.

    Untargeted: ascend the cross-entropy of the true class. Targeted: descend that of the
    target, so the gradient is negated. Summed, not averaged, so one image's gradient does
    not depend on the batch size.
    """
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, y, reduction="sum")
    (gradient,) = torch.autograd.grad(loss, x)
    return (-gradient if targeted else gradient), logits.detach()


L2_EPS = 0.5
"""Default radius of the L2-ball attacks (pixel scale; AutoAttack's CIFAR-10 L2 budget)."""
_TINY = 1e-12


def per_image_l2(values: Tensor) -> Tensor:
    """The L2 norm of each image of ``values``, shaped to broadcast against it."""
    return values.flatten(1).norm(dim=1).view((-1,) + (1,) * (values.ndim - 1))


def project_l2(x: Tensor, point: Tensor, eps: float) -> Tensor:
    """``point`` moved into the L2 ball of radius ``eps`` around ``x``, then into [0, 1]."""
    delta = point - x
    return (x + delta * torch.clamp(eps / (per_image_l2(delta) + _TINY), max=1.0)).clamp(0, 1)


def random_ball_direction(like: Tensor, norm: str, generator: torch.Generator) -> Tensor:
    """Per image of ``like``'s shape, a random direction of unit length in ``norm``
    (``"linf"``: uniform noise over its largest entry; ``"l2"``: normalised Gaussian), the
    random starts of APGD and FAB."""
    device, dtype = like.device, like.dtype
    if norm == "l2":
        noise = torch.randn(like.shape, generator=generator, device=device, dtype=dtype)
        return l2_direction(noise)
    noise = 2 * torch.rand(like.shape, generator=generator, device=device, dtype=dtype) - 1
    scale = noise.flatten(1).abs().amax(1).clamp(min=_TINY)
    return noise / scale.view((-1,) + (1,) * (like.ndim - 1))


def l2_direction(values: Tensor) -> Tensor:
    """Each image of ``values`` scaled to unit L2 norm (zero stays zero)."""
    return values / (per_image_l2(values) + _TINY)


def attack_defaults(cls: type[Attack]) -> dict[str, object]:
    """The keyword parameters of an attack class with their default values. A constructor
    that passes ``**params`` on (an L2 variant changing only ``eps``) takes its parent's
    too; one that does not (FGSM, which fixes its step) takes only its own."""
    defaults: dict[str, object] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or not issubclass(klass, Attack):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        for parameter in parameters:
            if parameter.default is not inspect.Parameter.empty:
                defaults.setdefault(parameter.name, parameter.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return defaults


def attack_summary(cls: type[Attack]) -> str:
    """The first line of an attack class's docstring."""
    return cls.__doc__.strip().splitlines()[0] if cls.__doc__ else ""
