"""Classifier construction, pickle-free save/load, TorchScript export, training behaviour."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from advguard.data import ImageDataset, split_holdout
from advguard.evaluation import evaluate_classifier
from advguard.models import (
    ModelLoadError,
    ModelSpec,
    TrainConfig,
    build_model,
    export_torchscript,
    fold_batchnorm,
    load_classifier,
    load_model,
    save_model,
    train_classifier,
)


def test_model_takes_unit_range_images_and_returns_logits():
    spec = ModelSpec(
        class_names=["a", "b", "c"],
        in_channels=3,
        image_size=64,
        mean=[0.5] * 3,
        std=[0.2] * 3,
        stage_convs=[1, 2, 1],
    )
    logits = build_model(spec).eval()(torch.rand(5, 3, 64, 64))
    assert logits.shape == (5, 3)


def test_save_and_load_round_trip(trained_small, tmp_path):
    folder = save_model(trained_small.model, trained_small.spec, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    loaded, spec = load_model(folder)
    x = trained_small.test.images[:16]
    assert spec == trained_small.spec
    assert torch.allclose(loaded(x), trained_small.model(x), atol=1e-5)


def test_folded_batchnorm_gives_the_same_logits_and_input_gradients(trained_small):
    model = trained_small.model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # a copy

    def logits_and_gradient(net: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        x = trained_small.test.images[:16].clone().requires_grad_(True)
        logits = net(x)
        return logits.detach(), torch.autograd.grad(logits.log_softmax(1)[:, 0].sum(), x)[0]

    (logits, gradient), (folded_logits, folded_gradient) = map(logits_and_gradient, (model, folded))
    assert torch.allclose(folded_logits, logits, atol=1e-4)
    assert torch.allclose(folded_gradient, gradient, atol=1e-4 * gradient.abs().max().item())


def test_torchscript_export_round_trip(trained_small, tmp_path):
    path = export_torchscript(trained_small.model, trained_small.spec, tmp_path / "m.pt")
    loaded, spec = load_classifier(path)
    x = trained_small.test.images[:16]
    assert spec == trained_small.spec
    assert torch.allclose(loaded(x), trained_small.model(x), atol=1e-5)


def test_pickles_and_damaged_files_are_refused(trained_small, tmp_path):
    pickled = tmp_path / "evil.pt"
    pickled.write_bytes(pickle.dumps({"not": "a model"}))
    with pytest.raises(ModelLoadError, match="not a TorchScript archive"):
        load_classifier(pickled)
    folder = save_model(trained_small.model, trained_small.spec, tmp_path / "m")
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ModelLoadError, match="cannot load weights"):
        load_model(folder)
    (folder / "model.json").write_text(json.dumps({"class_names": ["a"], "bogus": 1}))
    with pytest.raises(ModelLoadError, match="not a valid model description"):
        load_model(folder)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(tmp_path / "nowhere")


def test_training_learns_and_keeps_best_epoch(small_bundled):
    train, val = split_holdout(small_bundled["train"], 0.15, seed=0)
    spec = ModelSpec(class_names=train.class_names, image_size=32, width=8, stage_convs=[1, 1, 1])
    model = build_model(spec)
    before = evaluate_classifier(model, small_bundled["test"]).accuracy
    history = train_classifier(
        model, train, val, TrainConfig(epochs=15, batch_size=32, augment=0.0), show_progress=False
    )
    assert len(history.epochs) == 15
    best = max(history.epochs, key=lambda e: e.val_accuracy)
    assert history.best_val_accuracy == best.val_accuracy
    # The kept weights are the best epoch's: re-measuring validation gives its accuracy.
    assert evaluate_classifier(model, val).accuracy == pytest.approx(history.best_val_accuracy)
    # Chance is 0.25; at 32×32 a tiny model reaches about 0.6 in 15 epochs.
    assert evaluate_classifier(model, small_bundled["test"]).accuracy > max(before + 0.2, 0.5)


def test_early_stopping_stops(small_bundled):
    train, val = split_holdout(small_bundled["train"], 0.15, seed=0)
    tiny = ImageDataset(train.images[:64], train.labels[:64], train.class_names)
    model = build_model(
        ModelSpec(class_names=train.class_names, image_size=32, width=4, stage_convs=[1, 1])
    )
    history = train_classifier(
        model,
        tiny,
        val,
        TrainConfig(epochs=50, patience=2, learning_rate=1e-9),
        show_progress=False,
    )
    assert history.stopped_early and len(history.epochs) < 50


def test_weight_averaging_keeps_the_average_of_the_last_epochs(small_bundled):
    train, val = split_holdout(small_bundled["train"], 0.15, seed=0)
    spec = ModelSpec(class_names=train.class_names, image_size=32, width=8, stage_convs=[1, 1, 1])
    snapshots: list[dict[str, torch.Tensor]] = []
    torch.manual_seed(0)
    model = build_model(spec)

    def keep_weights(epoch: int, total: int, result: object) -> None:
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    config = TrainConfig(epochs=15, batch_size=32, augment=0.0, patience=2, average_last=0.2)
    history = train_classifier(model, train, val, config, keep_weights, show_progress=False)
    # Early stopping waits for the epochs to average: all 15 ran, the last 3 were averaged.
    assert len(history.epochs) == 15 and history.averaged_epochs == 3
    weights = model.state_dict()
    for name, value in weights.items():
        if name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue  # recomputed for the average, not averaged
        expected = torch.stack([snapshot[name] for snapshot in snapshots[-3:]]).mean(0)
        assert torch.allclose(value, expected, atol=1e-6), name
    # BatchNorm statistics belong to the averaged weights, not to the last epoch's.
    running = [n for n in weights if n.endswith("running_mean")]
    assert any(not torch.allclose(weights[n], snapshots[-1][n]) for n in running)
    accuracy = evaluate_classifier(model, val).accuracy
    assert history.averaged_val_accuracy == pytest.approx(accuracy)
    # Measured 0.54, above each averaged epoch (0.47–0.51); chance is 0.25.
    assert accuracy >= min(e.val_accuracy for e in history.epochs[-3:])
    with pytest.raises(ValueError, match="average_last"):
        train_classifier(model, train, val, TrainConfig(average_last=1.0), show_progress=False)
