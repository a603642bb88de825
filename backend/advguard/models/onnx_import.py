"""ONNX classifiers, converted once into differentiable TorchScript.

Attacks, adversarial training and the detector's features all follow the model's input
gradient, which an ONNX runtime does not give. So an uploaded ONNX file is converted with
``onnx2torch`` (each ONNX operator becomes a PyTorch module), traced on a batch of the
declared input shape and stored as TorchScript: from then on it is an uploaded TorchScript
model like any other (jobs, workers, the guard and its export load it with
``torch.jit.load``). Nothing is unpickled: ONNX is protobuf.

``onnx2torch`` imports ``torchvision`` for two detection operators (NonMaxSuppression and
RoiAlign), and torchvision would pull another torch build; it is installed without it and,
while it is imported, a placeholder stands in for torchvision whose functions refuse to run.
Models using those operators are refused before conversion (image classifiers do not).
"""

from __future__ import annotations

import importlib.util
import sys
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from advguard.models.io import ModelLoadError

NEEDS_TORCHVISION = frozenset({"NonMaxSuppression", "RoiAlign"})
"""ONNX operators whose onnx2torch converters call torchvision (not installed here)."""


def is_onnx(head: bytes) -> bool:
    """Whether a file starting with ``head`` looks like an ONNX model: a protobuf
    ``ModelProto`` begins with its ``ir_version`` (field 1, a varint: byte 0x08)."""
    return head[:1] == b"\x08"


TRACE_BATCH = 5
"""Batch size of the trace (then checked on other sizes): not 1, 2 or 3, which a graph
could hold for another reason (channels, a pair)."""


def convert_onnx(path: Path, example: Tensor) -> torch.jit.ScriptModule:
    """The ONNX model at ``path`` as traced TorchScript, for inputs shaped like ``example``
    (one image or more; traced on a batch of :data:`TRACE_BATCH`). Raises
    :class:`ModelLoadError` saying what is wrong: not ONNX, operators that cannot be
    converted (all of them named), or a batch size fixed in the graph."""
    onnx, convert, registry = _onnx2torch()
    try:
        proto = onnx.load(str(path))
    except Exception as error:  # protobuf's DecodeError and friends
        raise ModelLoadError(f"not a readable ONNX model: {error}") from None
    _inline_shared_weights(proto)
    unsupported = sorted(_unsupported(proto, registry))
    if unsupported:
        raise ModelLoadError(
            "the ONNX model uses operators advguard cannot convert to PyTorch: "
            + ", ".join(unsupported)
        )
    with warnings.catch_warnings():  # onnx2torch's and the tracer's notes on their internals
        warnings.simplefilter("ignore")
        try:
            module = _batch_free_reshapes(convert(proto).eval())
        except Exception as error:  # a converter's own refusal (an unsupported attribute, …)
            raise ModelLoadError(f"the ONNX model could not be converted: {error}") from None
        example = example[:1].expand(TRACE_BATCH, *example.shape[1:]).contiguous()
        try:
            traced = torch.jit.trace(module, example, check_trace=False)
        except Exception as error:
            raise ModelLoadError(
                f"the ONNX model fails on a {tuple(example.shape)} input: "
                f"{type(error).__name__}: {error} (exported with a fixed batch size? export "
                "it with a dynamic batch axis)"
            ) from None
        _check_batch_free(module, traced, example)
    return traced


def _check_batch_free(module: nn.Module, traced: torch.jit.ScriptModule, example: Tensor) -> None:
    """Refuse a graph whose batch size is baked in (exported without a dynamic batch axis):
    the converted model must give the same logits for batches of other sizes."""
    for size in (1, 2):
        other = torch.rand(size, *example.shape[1:])
        try:
            with torch.no_grad():
                expected, got = module(other), traced(other)
        except Exception as error:
            raise ModelLoadError(
                f"the ONNX model works on a batch of {len(example)} but not of {size} "
                f"({type(error).__name__}: {error}); export it with a dynamic batch axis"
            ) from None
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            raise ModelLoadError(
                "the ONNX model's output does not follow the batch size; export it with a "
                "dynamic batch axis"
            )
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise ModelLoadError(
                "the converted ONNX model gives other outputs on another batch size (a shape "
                "fixed in the graph?); export it with a dynamic batch axis"
            )


class _BatchFreeReshape(nn.Module):
    """ONNX ``Reshape`` as a trace keeps it variable in the batch: a target whose first
    dimension is the input's batch size says so with ``x.size(0)`` (PyTorch's exporter
    writes ``view(x.size(0), -1)`` as Shape → Gather → Concat → Reshape, and onnx2torch's
    own module turns those values into constants when traced)."""

    def forward(self, images: Tensor, shape: Tensor) -> Tensor:
        sizes = [int(value) for value in shape]
        sizes = [images.size(k) if value == 0 else value for k, value in enumerate(sizes)]
        if sizes and images.dim() > 0 and sizes[0] == images.size(0):
            sizes[0] = images.size(0)  # recorded as the input's size, not as a number
        return images.reshape(sizes)


def _batch_free_reshapes(module: nn.Module) -> nn.Module:
    """``module`` with each of onnx2torch's Reshape modules replaced by
    :class:`_BatchFreeReshape` (in place)."""
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "OnnxReshape":
                parent._modules[name] = _BatchFreeReshape()
    return module


def _inline_shared_weights(proto: Any) -> None:
    """Replace each ``Identity`` of a weight by a copy of the weight, in place. PyTorch's
    exporter stores equal weights once and reaches the others through ``Identity`` nodes,
    and onnx2torch's converters read a convolution's weights only from the weights."""
    weights = {tensor.name: tensor for tensor in proto.graph.initializer}
    kept = []
    for node in proto.graph.node:
        if node.op_type == "Identity" and not node.domain and node.input[0] in weights:
            copy = type(weights[node.input[0]])()
            copy.CopyFrom(weights[node.input[0]])
            copy.name = node.output[0]
            proto.graph.initializer.append(copy)
        else:
            kept.append(node)
    if len(kept) < len(proto.graph.node):
        del proto.graph.node[:]
        proto.graph.node.extend(kept)


def _unsupported(proto: Any, registry: dict[Any, Any]) -> set[str]:
    """Every operator of the graph that cannot be converted, named with its opset.

    onnx2torch (2024) knows each operator up to the versions of its time. An operator at a
    newer version whose node uses only attributes the newest known version has (newer
    versions mostly add element types or optional attributes) is converted as that version;
    its converter is registered under the newer version.
    """
    from onnx import defs
    from onnx2torch.node_converters.registry import OperationDescription  # imported already

    opsets = {entry.domain or "": entry.version for entry in proto.opset_import}
    known: dict[tuple[str, str], list[int]] = {}
    for description in registry:
        known.setdefault((description.domain, description.operation_type), []).append(
            description.version
        )
    missing = set()
    for node in proto.graph.node:
        domain, op = node.domain or "", node.op_type
        name = op if domain in ("", "ai.onnx") else f"{domain}.{op}"
        opset = opsets.get(domain, opsets.get("ai.onnx", 1))
        if op in NEEDS_TORCHVISION:
            missing.add(name)
            continue
        try:
            version = defs.get_schema(op, max_inclusive_version=opset, domain=domain).since_version
        except defs.SchemaError:
            version = opset
        wanted = OperationDescription(domain=domain, operation_type=op, version=version)
        if wanted in registry:
            continue
        older = [v for v in known.get((domain, op), []) if v < version]
        if older:
            fallback = wanted._replace(version=max(older))
            schema = defs.get_schema(op, max_inclusive_version=fallback.version, domain=domain)
            if {attribute.name for attribute in node.attribute} <= set(schema.attributes):
                registry[wanted] = registry[fallback]
                continue
        missing.add(f"{name} (opset {opset})")
    return missing


def _onnx2torch() -> tuple[Any, Callable[..., nn.Module], dict[Any, Any]]:
    """``onnx``, ``onnx2torch.convert`` and its converter registry (imported on first use,
    with the torchvision placeholder when torchvision is absent)."""
    if importlib.util.find_spec("onnx2torch") is None or importlib.util.find_spec("onnx") is None:
        raise ModelLoadError(
            "ONNX import needs the onnx and onnx2torch packages (`make install` installs them)"
        )
    placeholder = (
        importlib.util.find_spec("torchvision") is None and "onnx2torch" not in sys.modules
    )
    if placeholder:
        sys.modules["torchvision"] = _torchvision_placeholder()
        sys.modules["torchvision.ops"] = sys.modules["torchvision"].ops
    try:
        import onnx
        from onnx2torch import convert
        from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY
    finally:
        if placeholder:  # only onnx2torch's two detection converters keep a reference
            del sys.modules["torchvision"], sys.modules["torchvision.ops"]
    return onnx, convert, _CONVERTER_REGISTRY


def _torchvision_placeholder() -> types.ModuleType:
    def refuse(*_: object, **__: object) -> None:
        raise RuntimeError("this ONNX operator needs torchvision, which advguard does not use")

    package = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    for name in ("nms", "roi_align", "box_convert"):
        setattr(ops, name, refuse)
    package.ops = ops  # type: ignore[attr-defined]
    return package
