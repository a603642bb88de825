"""ONNX classifiers become differentiable TorchScript, or are refused saying why."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advguard.models import ModelLoadError
from advguard.models.onnx_import import convert_onnx, is_onnx

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SIZE = 8


def linear_graph(
    *extra_nodes: onnx.NodeProto, output: str = "logits", size: int = SIZE
) -> onnx.ModelProto:
    """``image (N×1×size×size) → Flatten → Gemm → logits (N×4)``, then ``extra_nodes``."""
    weights = np.random.default_rng(0).normal(size=(4, size * size)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"]),
            helper.make_node("Gemm", ["flat", "weights", "bias"], ["logits"], transB=1),
            *extra_nodes,
        ],
        "classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, size, size])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["batch", 4])],
        [
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.zeros(4, np.float32), "bias"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def saved(model: onnx.ModelProto, tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_an_onnx_graph_becomes_differentiable_torchscript(tmp_path):
    path = saved(linear_graph(), tmp_path)
    assert is_onnx(path.read_bytes()[:8])
    converted = convert_onnx(path, torch.rand(2, 1, SIZE, SIZE))
    image = torch.rand(5, 1, SIZE, SIZE, requires_grad=True)
    weights = torch.from_numpy(
        np.random.default_rng(0).normal(size=(4, SIZE * SIZE)).astype(np.float32)
    )
    logits = converted(image)
    assert torch.allclose(logits, image.flatten(1) @ weights.T, atol=1e-5)
    (gradient,) = torch.autograd.grad(logits[:, 0].sum(), image)
    assert torch.allclose(gradient.flatten(1), weights[0].expand(5, -1))


def test_operators_that_cannot_be_converted_are_all_named(tmp_path):
    model = linear_graph(
        helper.make_node("Magic", ["logits"], ["spell"], domain="com.example"),
        helper.make_node("NonMaxSuppression", ["logits", "logits"], ["kept"]),
        output="spell",
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelLoadError) as error:
        convert_onnx(saved(model, tmp_path), torch.rand(2, 1, SIZE, SIZE))
    assert "com.example.Magic" in str(error.value)
    assert "NonMaxSuppression" in str(error.value)


def test_a_batch_size_fixed_in_the_graph_is_refused(tmp_path):
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 4)).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # no dynamic axes, and a reshape to the traced batch size: batch 2 for ever
        torch.onnx.export(
            nn.Sequential(network, nn.Unflatten(0, (2,))).eval(),
            (torch.rand(2, 1, SIZE, SIZE),),
            buffer,
            dynamo=False,
        )
    path = tmp_path / "fixed.onnx"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(ModelLoadError, match="dynamic batch axis"):
        convert_onnx(path, torch.rand(2, 1, SIZE, SIZE))


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\xff\xff\xff not protobuf at all")
    with pytest.raises(ModelLoadError, match="not a readable ONNX model"):
        convert_onnx(path, torch.rand(2, 1, SIZE, SIZE))
