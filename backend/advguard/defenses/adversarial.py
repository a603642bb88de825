"""Adversarial training: PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019).

PGD-AT (arXiv:1706.06083) trains on the worst case it can find: each batch is replaced by
its PGD adversarial examples (random start, L∞ ball of radius ``eps``) and the model
minimises the cross-entropy on those. TRADES (arXiv:1901.08573) keeps the clean
cross-entropy and adds ``beta`` times the KL divergence between the model's output on the
clean image and on a perturbed one, where the perturbation maximises that same KL
(sign steps from ``x + 0.001·N(0, 1)``, projected onto the ball); ``beta`` trades clean
accuracy for robustness.

Batch normalisation: adversarial examples are crafted in evaluation mode (running
statistics, no dropout, frozen weights; see :func:`advguard.attacks.base.attack_mode`) and
the weight update then runs in train mode. Crafting in train mode would fold every attack
iterate into the running statistics and make each image's perturbation depend on the rest
of its batch; the TRADES reference code and most PyTorch PGD-AT code do the same.

Training is usually a fine-tune of a standard-trained model (pass it in), but works from
a fresh :func:`advguard.models.build_model` too. After every epoch a checkpoint can be
written (safetensors tensors + JSON metadata in one file, replaced atomically), from which
an interrupted run resumes to the same result as an uninterrupted one.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.attacks import create_attack, run_attack
from advguard.attacks.base import attack_mode
from advguard.data.dataset import ImageDataset, split_holdout
from advguard.models.training import (
    HOLDOUT_FRACTION,
    BatchLoss,
    EpochResult,
    TrainHistory,
    class_weights,
    one_cycle_optimizer,
    predict_logits,
    train_epoch,
)

METHODS = ("pgd", "trades")
CHECKPOINT_FILE = "adversarial_checkpoint.safetensors"
_CHECKPOINT_FORMAT = "advguard-adversarial-training"
_CHECKPOINT_VERSION = 1
_METADATA_KEY = "advguard"
# Fields that may change between a run and its resumption: the time limit is per call.
_RESUMABLE_CHANGES = frozenset({"time_limit_s"})
# Madry et al.'s rule: 2.5·eps/steps lets the iterates cross the ball from any start.
_STEP_FACTOR = 2.5


class CheckpointError(ValueError):
    """A training checkpoint that cannot be resumed from; the message says why and what to do."""


@dataclass
class AdversarialTrainConfig:
    """Hyper-parameters of :func:`adversarial_train`.

    Defaults aim at fine-tuning a standard-trained 1×128×128 classifier on a CPU:

    - ``eps`` 8/255: the largest budget of the demo robustness table.
    - ``steps`` 5 inner PGD/KL steps: each step costs about one forward-backward pass, so
      an epoch costs about ``steps + 1`` standard epochs; 5 is the cheapest count that
      still crosses the ball with ``alpha`` = 2.5·eps/steps (= eps/2).
    - ``alpha`` ``None`` means 2.5·eps/steps (Madry et al.'s rule), so changing ``eps``
      or ``steps`` keeps the two consistent.
    - ``beta`` 6: the value TRADES reports as its best robustness/accuracy trade-off.
    - ``val_steps`` 10: validation runs PGD-10 at ``eps`` (step 2.5·eps/10, random start,
      fixed seed) on the validation split; the kept weights are those of the epoch with
      the highest robust accuracy (ties: clean accuracy, then lower clean loss).
    - ``learning_rate`` 1e-3, a third of standard training's peak, on the same one-cycle
      schedule: enough to move a trained model to robust features without wiping it out.
    - ``label_smoothing`` 0: smoothing flattens the logits the inner attack climbs, which
      is known to make robustness look better than it is.
    - ``time_limit_s`` bounds one call (a resumed call gets its own budget); stopping on
      it leaves the checkpoint resumable, stopping on ``patience`` or after ``epochs``
      finishes it.
    """

    method: str = "pgd"
    """``"pgd"`` (PGD-AT) or ``"trades"``."""
    eps: float = 8 / 255
    alpha: float | None = None
    steps: int = 5
    beta: float = 6.0
    """TRADES only: weight of the KL (robustness) term."""
    val_steps: int = 10
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    augment: float = 1.0
    """Strength of the random augmentation, as in training (0 turns it off)."""
    patience: int = 10
    time_limit_s: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    @property
    def step_size(self) -> float:
        """The inner step ``alpha``, or 2.5·eps/steps when it is ``None``."""
        return self.alpha if self.alpha is not None else _STEP_FACTOR * self.eps / self.steps

    def validate(self) -> None:
        """Raise :class:`ValueError` naming the first bad parameter."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        _check_number("eps", self.eps, low=0.0, high=1.0, low_open=True)
        if self.alpha is not None:
            _check_number("alpha", self.alpha, low=0.0, low_open=True)
        _check_number("beta", self.beta, low=0.0)
        _check_number("learning_rate", self.learning_rate, low=0.0, low_open=True)
        _check_number("weight_decay", self.weight_decay, low=0.0)
        _check_number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        _check_number("augment", self.augment, low=0.0)
        if self.time_limit_s is not None:
            _check_number("time_limit_s", self.time_limit_s, low=0.0, low_open=True)
        for name in ("steps", "val_steps", "epochs", "batch_size", "patience"):
            _check_count(name, getattr(self, name))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be a whole number, got {self.seed!r}")


def _check_number(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value}")


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")


@dataclass
class AdversarialEpochResult(EpochResult):
    """One epoch: ``val_loss`` and ``val_accuracy`` are clean, ``val_robust_accuracy`` is
    the accuracy under the validation PGD attack."""

    val_robust_accuracy: float


@dataclass
class AdversarialTrainHistory(TrainHistory[AdversarialEpochResult]):
    """Per-epoch results (also those of earlier, resumed calls) and the epoch kept.

    ``resumed_epochs`` counts the epochs read from a checkpoint rather than run by this
    call; ``seconds`` adds up the time of all calls.
    """

    resumed_epochs: int = 0

    @property
    def best_val_robust_accuracy(self) -> float:
        return self.epochs[self.best_epoch].val_robust_accuracy if self.epochs else float("nan")


EpochProgress = Callable[[int, int, AdversarialEpochResult], None]


def trades_perturbation(
    model: nn.Module,
    x: Tensor,
    *,
    eps: float,
    alpha: float,
    steps: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """TRADES' inner maximisation: ``x'`` in the L∞ ball of radius ``eps`` around ``x``
    (and in [0, 1]) that maximises ``KL(f(x) ‖ f(x'))``.

    Starts from ``x + 0.001·N(0, 1)`` (at ``x' = x`` the KL's gradient is zero) and takes
    ``steps`` signed steps of ``alpha``. Runs in evaluation mode with frozen weights, like
    the attacks. ``generator`` (on the CPU) draws the start. Shapes: ``x`` N×C×H×W in
    [0, 1]; returns the same shape, on ``x``'s device.
    """
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float N×C×H×W tensor, got shape {tuple(x.shape)}")
    x = x.detach()
    lower = (x - eps).clamp_(min=0.0)
    upper = (x + eps).clamp_(max=1.0)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    x_adv = torch.clamp(x + 0.001 * noise, lower, upper)
    with attack_mode(model):
        with torch.no_grad():
            clean_probabilities = F.softmax(model(x), dim=1)
        for _ in range(steps):
            x_adv.requires_grad_(True)
            divergence = F.kl_div(
                F.log_softmax(model(x_adv), dim=1), clean_probabilities, reduction="sum"
            )
            (gradient,) = torch.autograd.grad(divergence, x_adv)
            x_adv = torch.add(x_adv.detach(), gradient.sign_(), alpha=alpha).clamp_(lower, upper)
    return x_adv.detach()


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _batch_loss(
    model: nn.Module, config: AdversarialTrainConfig, weights: Tensor, generator: torch.Generator
) -> BatchLoss:
    """The outer loss of ``config.method`` for one batch, inner maximisation included."""

    def pgd_loss(images: Tensor, labels: Tensor) -> Tensor:
        # A fresh seed per batch: one fixed seed would give every batch the same start.
        attack = create_attack(
            "pgd",
            model,
            eps=config.eps,
            alpha=config.step_size,
            steps=config.steps,
            seed=_draw_seed(generator),
        )
        adversarial = attack(images, labels)
        return F.cross_entropy(
            model(adversarial), labels, weight=weights, label_smoothing=config.label_smoothing
        )

    def trades_loss(images: Tensor, labels: Tensor) -> Tensor:
        adversarial = trades_perturbation(
            model,
            images,
            eps=config.eps,
            alpha=config.step_size,
            steps=config.steps,
            generator=generator,
        )
        logits = model(images)
        # The clean distribution is not detached: as in the reference code, the KL term
        # pulls both outputs together.
        robust = F.kl_div(
            F.log_softmax(model(adversarial), dim=1),
            F.softmax(logits, dim=1),
            reduction="batchmean",
        )
        natural = F.cross_entropy(
            logits, labels, weight=weights, label_smoothing=config.label_smoothing
        )
        return natural + config.beta * robust

    return pgd_loss if config.method == "pgd" else trades_loss


def _validate(
    model: nn.Module, val: ImageDataset, config: AdversarialTrainConfig
) -> tuple[float, float, float]:
    """Clean loss, clean accuracy and PGD-``val_steps`` robust accuracy on ``val``."""
    logits = predict_logits(model, val.images)
    attack = create_attack(
        "pgd",
        model,
        eps=config.eps,
        alpha=_STEP_FACTOR * config.eps / config.val_steps,
        steps=config.val_steps,
        seed=config.seed,
    )
    outcome = run_attack(model, attack, val, predicted_before=logits.argmax(1), show_progress=False)
    return (
        float(F.cross_entropy(logits, val.labels)),
        outcome.clean_accuracy,
        outcome.adversarial_accuracy,
    )


def _selection_key(result: AdversarialEpochResult) -> tuple[float, float, float]:
    return (result.val_robust_accuracy, result.val_accuracy, -result.val_loss)


def adversarial_train(
    model: nn.Module,
    train: ImageDataset,
    val: ImageDataset,
    config: AdversarialTrainConfig | None = None,
    *,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    progress: EpochProgress | None = None,
    show_progress: bool = True,
) -> AdversarialTrainHistory:
    """Train ``model`` in place adversarially and keep the weights of its most robust
    validation epoch (see :class:`AdversarialTrainConfig` for the selection rule).

    Stops early once validation robust accuracy has not improved for ``config.patience``
    epochs, or when ``config.time_limit_s`` has passed. ``progress(epoch, total, result)``
    is called after every epoch (after its checkpoint is written), and may raise to cancel:
    the exception propagates and the checkpoint keeps the epochs done. A tqdm bar is shown
    when ``show_progress``.

    With ``checkpoint_dir``, the state after each epoch (weights, best weights, optimizer,
    schedule, random generators, history) is written to ``checkpoint_dir/`` +
    :data:`CHECKPOINT_FILE`. With ``resume`` and such a file present, training continues
    from it (``model``'s own weights are replaced by the checkpoint's) and ends with the
    weights an uninterrupted run would have given; a finished checkpoint is loaded and
    returned without training. No file: a fresh start. A file that cannot be read, or one
    written for another configuration or dataset, raises :class:`CheckpointError` rather
    than silently discarding the work it holds; ``resume=False`` starts afresh and
    overwrites it.
    """
    config = config or AdversarialTrainConfig()
    config.validate()
    if not len(train) or not len(val):
        raise ValueError("adversarial training needs a non-empty training and validation set")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # dropout draws from the global generator
    optimizer, scheduler = one_cycle_optimizer(
        model,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        epochs=config.epochs,
        steps_per_epoch=math.ceil(len(train) / config.batch_size),
    )
    batch_loss = _batch_loss(model, config, class_weights(train, device), generator)
    history = AdversarialTrainHistory()
    best_state = copy.deepcopy(model.state_dict())
    finished = False
    path = Path(checkpoint_dir) / CHECKPOINT_FILE if checkpoint_dir is not None else None
    if path is not None and resume and path.exists():
        checkpoint = _Checkpoint.read(path)
        checkpoint.check_matches(config, train, val)
        best_state = checkpoint.restore(model, optimizer, scheduler, generator)
        history, finished = checkpoint.history(), checkpoint.finished
        history.resumed_epochs = len(history.epochs)
        history.stopped_early = history.stopped_early and finished

    def save(finished: bool) -> None:
        if path is not None:
            _Checkpoint.capture(
                model,
                best_state,
                optimizer,
                scheduler,
                generator,
                history,
                finished,
                config,
                _data_signature(train, val),
            ).write(path)

    previous_seconds = history.seconds
    started = time.perf_counter()
    bar = tqdm(
        total=config.epochs,
        initial=len(history.epochs),
        desc=f"adversarial training ({config.method})",
        unit="epoch",
        disable=not show_progress,
    )
    for epoch in range(len(history.epochs), 0 if finished else config.epochs):
        epoch_start = time.perf_counter()
        train_loss = train_epoch(
            model,
            train,
            batch_loss,
            optimizer,
            scheduler,
            generator,
            batch_size=config.batch_size,
            augment=config.augment,
        )
        val_loss, val_accuracy, val_robust_accuracy = _validate(model, val, config)
        result = AdversarialEpochResult(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            seconds=time.perf_counter() - epoch_start,
            val_robust_accuracy=val_robust_accuracy,
        )
        history.epochs.append(result)
        if history.best_epoch < 0 or _selection_key(result) > _selection_key(
            history.epochs[history.best_epoch]
        ):
            history.best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
        out_of_patience = epoch - history.best_epoch >= config.patience
        out_of_time = (
            config.time_limit_s is not None and time.perf_counter() - started > config.time_limit_s
        )
        history.stopped_early = out_of_patience or out_of_time
        history.seconds = previous_seconds + time.perf_counter() - started
        save(finished=out_of_patience or epoch + 1 == config.epochs)
        bar.update(1)
        bar.set_postfix(
            loss=f"{train_loss:.3f}",
            val_acc=f"{val_accuracy:.3f}",
            robust_acc=f"{val_robust_accuracy:.3f}",
        )
        if progress is not None:
            progress(epoch + 1, config.epochs, result)
        if history.stopped_early:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.zero_grad(set_to_none=True)
    model.eval()
    return history


def adversarial_fit(
    model: nn.Module,
    train: ImageDataset,
    config: AdversarialTrainConfig | None = None,
    *,
    val_fraction: float = HOLDOUT_FRACTION,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    progress: EpochProgress | None = None,
    show_progress: bool = True,
) -> AdversarialTrainHistory:
    """Hold out ``val_fraction`` of ``train`` (as :func:`advguard.models.fit_classifier`
    does) and train ``model`` adversarially on the rest.

    With the seed and fraction the standard training used, the held-out images are the
    same ones, so the validation split stays unseen by both trainings.
    """
    config = config or AdversarialTrainConfig()
    fit, val = split_holdout(train, val_fraction, seed=config.seed)
    history = adversarial_train(
        model,
        fit,
        val,
        config,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        progress=progress,
        show_progress=show_progress,
    )
    history.holdout_files = list(val.files)
    return history


# --- checkpoints: tensors in safetensors, everything else as JSON in its metadata ---------

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def _encode(value: object, key: str, tensors: dict[str, Tensor]) -> JsonValue:
    """``value`` as JSON, its tensors moved into ``tensors`` under path-like keys.

    Tuples and dictionaries with non-string keys (optimizer state is keyed by parameter
    index) are tagged so that :func:`_decode` gives back exactly what was saved.
    """
    if isinstance(value, Tensor):
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(item, f"{key}.{i}", tensors) for i, item in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(item, f"{key}.{i}", tensors) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            "__items__": [
                [name, _encode(item, f"{key}.{name}", tensors)] for name, item in value.items()
            ]
        }
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {key} in a checkpoint")


def _decode(value: JsonValue, tensors: dict[str, Tensor]) -> object:
    if isinstance(value, list):
        return [_decode(item, tensors) for item in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[str(value["__tensor__"])]
        if "__tuple__" in value:
            items = value["__tuple__"]
            assert isinstance(items, list)
            return tuple(_decode(item, tensors) for item in items)
        pairs = value["__items__"]
        assert isinstance(pairs, list)
        decoded = {}
        for pair in pairs:
            assert isinstance(pair, list)
            name, item = pair
            assert isinstance(name, str | int)
            decoded[name] = _decode(item, tensors)
        return decoded
    return value


def _prefixed(prefix: str, state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {
        prefix + name: tensor.detach().cpu().contiguous().clone() for name, tensor in state.items()
    }


def _unprefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}


@dataclass
class _Checkpoint:
    """The resumable state after one epoch: ``tensors`` plus JSON ``meta``."""

    path: Path | None
    tensors: dict[str, Tensor]
    meta: dict[str, JsonValue]

    @classmethod
    def capture(
        cls,
        model: nn.Module,
        best_state: dict[str, Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
        history: AdversarialTrainHistory,
        finished: bool,
        config: AdversarialTrainConfig,
        data: dict[str, JsonValue],
    ) -> _Checkpoint:
        tensors = {**_prefixed("model.", model.state_dict()), **_prefixed("best.", best_state)}
        tensors["rng.generator"] = generator.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        device = next(model.parameters()).device
        if device.type == "cuda":  # dropout on a GPU draws from the device's generator
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        meta: dict[str, JsonValue] = {
            "format": _CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "config": asdict(config),  # type: ignore[dict-item]
            "optimizer": _encode(optimizer.state_dict(), "optimizer", tensors),
            "scheduler": _encode(scheduler.state_dict(), "scheduler", tensors),
            "history": {
                "epochs": [asdict(result) for result in history.epochs],  # type: ignore[misc]
                "best_epoch": history.best_epoch,
                "stopped_early": history.stopped_early,
                "seconds": history.seconds,
            },
            "data": data,  # to refuse resuming on other data
            "finished": finished,
        }
        return cls(path=None, tensors=tensors, meta=meta)

    def write(self, path: Path) -> None:
        """Write to a temporary file beside ``path``, then rename it over ``path``: a kill
        mid-write leaves the previous checkpoint whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            save_file(self.tensors, str(temporary), metadata={_METADATA_KEY: json.dumps(self.meta)})
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        try:  # make the rename itself durable; not possible everywhere, harmless to skip
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError:
            pass

    @classmethod
    def read(cls, path: Path) -> _Checkpoint:
        advice = "delete it or pass resume=False to start afresh"
        try:
            with safe_open(str(path), framework="pt") as handle:
                raw = (handle.metadata() or {}).get(_METADATA_KEY)
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
            meta = json.loads(raw) if raw is not None else None
        except (OSError, SafetensorError, json.JSONDecodeError) as error:
            raise CheckpointError(f"checkpoint {path} is damaged ({error}); {advice}") from error
        if not isinstance(meta, dict) or meta.get("format") != _CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path} is not an adversarial-training checkpoint; {advice}")
        if meta.get("version") != _CHECKPOINT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {meta.get('version')!r}, this version "
                f"of advguard reads {_CHECKPOINT_VERSION}; {advice}"
            )
        return cls(path=path, tensors=tensors, meta=meta)

    def check_matches(
        self, config: AdversarialTrainConfig, train: ImageDataset, val: ImageDataset
    ) -> None:
        """Refuse to continue a run made with other settings or other data."""
        saved = self.meta.get("config")
        current = asdict(config)
        if not isinstance(saved, dict):
            raise CheckpointError(f"checkpoint {self.path} records no configuration")
        changed = sorted(
            name
            for name in current.keys() | saved.keys()
            if name not in _RESUMABLE_CHANGES and current.get(name) != saved.get(name)
        )
        if changed:
            details = ", ".join(
                f"{name}: {saved.get(name)!r} → {current.get(name)!r}" for name in changed
            )
            raise CheckpointError(
                f"checkpoint {self.path} was written with other settings ({details}); "
                "use the same settings, another checkpoint folder, or resume=False"
            )
        if self.meta.get("data") != _data_signature(train, val):
            raise CheckpointError(
                f"checkpoint {self.path} was written for other training or validation data "
                f"({self.meta.get('data')}); use another checkpoint folder or resume=False"
            )

    def restore(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        generator: torch.Generator,
    ) -> dict[str, Tensor]:
        """Put the saved state into the live objects; return the best weights so far."""
        device = next(model.parameters()).device
        try:
            model.load_state_dict(_unprefixed("model.", self.tensors))
            best_state = {
                name: tensor.to(device)
                for name, tensor in _unprefixed("best.", self.tensors).items()
            }
            if best_state.keys() != model.state_dict().keys():
                raise KeyError("its best weights do not match the model")
            optimizer.load_state_dict(_decode(self.meta["optimizer"], self.tensors))  # type: ignore[arg-type]
            scheduler.load_state_dict(_decode(self.meta["scheduler"], self.tensors))  # type: ignore[arg-type]
            generator.set_state(self.tensors["rng.generator"])
            torch.set_rng_state(self.tensors["rng.torch"])
            if device.type == "cuda" and "rng.cuda" in self.tensors:
                torch.cuda.set_rng_state(self.tensors["rng.cuda"], device)
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(
                f"checkpoint {self.path} does not fit this model or is incomplete ({error}); "
                "use another checkpoint folder or resume=False"
            ) from error
        _match_state_layout(optimizer)
        return best_state

    @property
    def finished(self) -> bool:
        return bool(self.meta.get("finished"))

    def history(self) -> AdversarialTrainHistory:
        saved = self.meta["history"]
        assert isinstance(saved, dict)
        epochs = saved["epochs"]
        assert isinstance(epochs, list)
        return AdversarialTrainHistory(
            epochs=[AdversarialEpochResult(**result) for result in epochs],  # type: ignore[arg-type]
            best_epoch=int(saved["best_epoch"]),  # type: ignore[arg-type]
            stopped_early=bool(saved["stopped_early"]),
            seconds=float(saved["seconds"]),  # type: ignore[arg-type]
        )


def _data_signature(train: ImageDataset, val: ImageDataset) -> dict[str, JsonValue]:
    return {
        "train_size": len(train),
        "val_size": len(val),
        "image_shape": list(train.images.shape[1:]),
        "class_names": list(train.class_names),
    }


def _match_state_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give restored moment estimates their parameter's memory layout (channels-last for
    convolutions): the values are the same either way, the speed of the update is not."""
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            state = optimizer.state.get(parameter, {})
            for name, value in state.items():
                if isinstance(value, Tensor) and value.shape == parameter.shape:
                    state[name] = torch.empty_like(parameter).copy_(value)
