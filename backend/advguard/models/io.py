"""Saving and loading classifiers without pickle: safetensors + JSON, or TorchScript."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from advguard.models.cnn import ModelSpec, build_model

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
HOLDOUT_FILE = "holdout.json"


class ModelLoadError(ValueError):
    """A model file or folder that cannot be loaded; the message says why."""


def save_model(
    model: nn.Module,
    spec: ModelSpec,
    directory: str | Path,
    holdout_files: list[str] | None = None,
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``directory``, and
    ``holdout.json`` naming the training images held out from it when given; return the
    folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()
    }
    save_file(state, str(directory / WEIGHTS_FILE))
    (directory / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2))
    if holdout_files is not None:
        held_out = {"split": "train", "files": holdout_files}
        (directory / HOLDOUT_FILE).write_text(json.dumps(held_out, indent=1))
    return directory


def read_holdout_files(path: str | Path) -> list[str] | None:
    """The training images a saved classifier never trained on (``holdout.json``), or
    ``None`` where it does not say (TorchScript uploads, models saved before)."""
    file = Path(path) / HOLDOUT_FILE
    if not file.is_file():
        return None
    try:
        files = json.loads(file.read_text())["files"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ModelLoadError(f"{file} is not a valid hold-out list: {error}") from error
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ModelLoadError(f"{file} is not a valid hold-out list: files must be names")
    return files


def read_spec(path: str | Path) -> ModelSpec:
    """Parse a ``model.json`` description, with a readable error for bad content."""
    try:
        raw = json.loads(Path(path).read_text())
        return ModelSpec(**raw)
    except (OSError, json.JSONDecodeError, TypeError) as error:
        raise ModelLoadError(f"{path} is not a valid model description: {error}") from error


def load_model(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec]:
    """Load a classifier saved by :func:`save_model` (weights only, never unpickled)."""
    directory = Path(directory)
    spec = read_spec(directory / SPEC_FILE)
    try:
        model = build_model(spec)
        state = load_file(str(directory / WEIGHTS_FILE), device=str(device))
        model.load_state_dict(state)
    except (OSError, SafetensorError, RuntimeError, ValueError) as error:
        raise ModelLoadError(f"cannot load weights from {directory}: {error}") from error
    return model.to(device).eval(), spec


def export_torchscript(model: nn.Module, spec: ModelSpec, path: str | Path) -> Path:
    """Trace ``model`` to a TorchScript archive that embeds its description."""
    example = torch.rand(1, spec.in_channels, spec.image_size, spec.image_size)
    model = model.eval().cpu()
    path = Path(path)
    with warnings.catch_warnings():
        # TorchScript is deprecated upstream but it is the portable, pickle-free format our
        # users upload; keep producing it quietly until torch.export archives replace it.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, str(path), _extra_files={SPEC_FILE: json.dumps(spec.to_dict())})
    return path


def load_torchscript(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec | None]:
    """Load a TorchScript classifier and the description it embeds, if any."""
    extra = {SPEC_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as error:
        raise ModelLoadError(f"{path} is not a TorchScript archive: {error}") from error
    spec = ModelSpec(**json.loads(extra[SPEC_FILE])) if extra[SPEC_FILE] else None
    return module.eval(), spec


def load_classifier(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec | None]:
    """Load a classifier from a saved folder (safetensors + JSON) or a TorchScript file.

    A TorchScript file's description is the one written beside it (:data:`SPEC_FILE` in
    its folder: what its uploader declared), else the one it embeds, else ``None``."""
    path = Path(path)
    if path.is_dir():
        return load_model(path, device)
    if path.is_file():
        module, embedded = load_torchscript(path, device)
        beside = path.parent / SPEC_FILE
        return module, read_spec(beside) if beside.is_file() else embedded
    raise ModelLoadError(f"{path} does not exist")
