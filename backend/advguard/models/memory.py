"""Batch sizes that fit in memory, measured on the network itself.

A batch of 128 costs our CNN a few megabytes, but a DenseNet-121 keeps ~40 MB of
activations per 128-pixel image for the backward pass (~125 MB at 224 px in RGB): 128 of
them is 5–16 GB, and under jemalloc (which keeps what it has freed, for speed) a worker that
ran such batches stays that large. Every loop that pushes images through a model therefore
asks :func:`fitting_batch_size` how many images to take at once.
"""

from __future__ import annotations

import threading
import weakref

import torch
from torch import Tensor, nn

from advguard.config import get_settings

_MEASURED: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], int]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def activation_bytes_per_image(model: nn.Module, image_shape: tuple[int, ...]) -> int:
    """Bytes of the activations that one image of ``image_shape`` (C, H, W) leaves saved
    for the backward pass of ``model``: the memory a batch grows by per image when input
    gradients are taken. Without gradients a forward keeps fewer of them alive at once, so
    the number bounds inference too.

    Measured once per model and shape, with a forward pass on two blank images in
    evaluation mode (so that batch normalisation's running statistics are left alone).
    Storages are counted once however many operations save them, and the weights not at all.
    """
    shape = tuple(int(size) for size in image_shape)
    with _LOCK:
        known = _MEASURED.get(model, {}).get(shape)
    if known is not None:
        return known
    weights = {parameter.untyped_storage().data_ptr() for parameter in model.parameters()}
    saved: dict[int, int] = {}

    def note(tensor: Tensor) -> Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    device = next((parameter.device for parameter in model.parameters()), torch.device("cpu"))
    images = torch.zeros((2, *shape), device=device, requires_grad=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(note, lambda t: t):
            model(images)
    finally:
        model.train(was_training)
    per_image = max(1, sum(saved.values()) // 2)
    with _LOCK:
        _MEASURED.setdefault(model, {})[shape] = per_image
    return per_image


def fitting_batch_size(
    model: nn.Module, image_shape: tuple[int, ...], wanted: int, budget_bytes: int | None = None
) -> int:
    """``wanted``, or fewer images where a batch of ``wanted`` would keep more than
    ``budget_bytes`` of activations (default: the ``ADVGUARD_BATCH_MEMORY_MB`` setting);
    never less than one."""
    budget = get_settings().batch_memory_mb << 20 if budget_bytes is None else budget_bytes
    per_image = activation_bytes_per_image(model, image_shape)
    return max(1, min(wanted, budget // per_image))
