"""Classifier construction, pickle-free save/load, TorchScript export, training behaviour."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from advguard.data import ImageDataset, split_holdout
from advguard.evaluation import evaluate_classifier
from advguard.models import (
    HOLDOUT_FRACTION,
    ModelLoadError,
    ModelSpec,
    TrainConfig,
    build_model,
    export_torchscript,
    fit_classifier,
    fold_batchnorm,
    load_classifier,
    load_model,
    predict_labels,
    read_holdout_files,
    save_model,
    train_classifier,
)
from advguard.models.training import moving_average


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
    # Compared as a whole, to 1 %: the folded convolution sums in another order, and where
    # two activations of a max-pool window tie to float32 rounding the gradient may take
    # the other one (measured 0.2 % apart in the full suite, 3e-7 in this file alone). A
    # wrong fold is off by far more than that.
    assert (folded_gradient - gradient).norm() <= 1e-2 * gradient.norm()


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
        model,
        train,
        val,
        TrainConfig(epochs=15, batch_size=32, augment=0.0, ema_decay=0.0),
        show_progress=False,
    )
    assert len(history.epochs) == 15 and not history.averaged
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
        TrainConfig(epochs=50, patience=2, learning_rate=1e-9, ema_decay=0.0),
        show_progress=False,
    )
    assert history.stopped_early and len(history.epochs) < 50


def test_moving_average_warms_up_then_decays():
    model = torch.nn.Linear(1, 1, bias=False)
    average = moving_average(model, decay=0.5)
    expected = 0.0
    for step, value in enumerate([1.0, 3.0, 7.0, -2.0, 5.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update_parameters(model)
        # The first update copies; after n updates the new weights count
        # max(1 - 0.5, 1 / (1 + n / 4)).
        keep = 1 - max(0.5, 1 / (1 + step / 4))
        expected = keep * expected + (1 - keep) * value
        assert average.module.weight.item() == pytest.approx(expected)


def test_training_keeps_the_moving_average_and_runs_every_epoch(small_bundled):
    train, val = split_holdout(small_bundled["train"], 0.15, seed=0)
    spec = ModelSpec(class_names=train.class_names, image_size=32, width=8, stage_convs=[1, 1, 1])
    torch.manual_seed(0)
    model = build_model(spec)
    config = TrainConfig(epochs=12, batch_size=32, augment=0.0, patience=1, ema_decay=0.9)
    last_weights: dict[str, torch.Tensor] = {}

    def keep_weights(epoch: int, total: int, result: object) -> None:
        last_weights.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    history = train_classifier(model, train, val, config, keep_weights, show_progress=False)
    # Patience stops nothing: the schedule anneals to the last epoch, which is kept.
    assert history.averaged and len(history.epochs) == 12 and not history.stopped_early
    # The kept weights are the average, not the last step's, and each epoch's validation
    # accuracy was the average's: re-measuring gives the last one.
    assert not torch.allclose(model.state_dict()["head.3.weight"], last_weights["head.3.weight"])
    accuracy = evaluate_classifier(model, val).accuracy
    assert accuracy == pytest.approx(history.epochs[-1].val_accuracy)
    assert accuracy > 0.35  # chance is 0.25; measured 0.41
    with pytest.raises(ValueError, match="ema_decay"):
        train_classifier(model, train, val, TrainConfig(ema_decay=1.0), show_progress=False)


def test_fit_classifier_names_its_held_out_images_and_saves_them(small_bundled, tmp_path):
    train = small_bundled["train"]
    config = TrainConfig(epochs=1, batch_size=64, augment=0.0)
    model, spec, history = fit_classifier(train, config, show_progress=False)
    held_out = set(history.holdout_files)
    assert len(held_out) == pytest.approx(len(train) * HOLDOUT_FRACTION, abs=4)
    save_model(model, spec, tmp_path / "model", history.holdout_files)
    assert read_holdout_files(tmp_path / "model") == history.holdout_files
    save_model(model, spec, tmp_path / "bare")
    assert read_holdout_files(tmp_path / "bare") is None
    (tmp_path / "bare" / "holdout.json").write_text('{"files": [1, 2]}')
    with pytest.raises(ModelLoadError, match="hold-out"):
        read_holdout_files(tmp_path / "bare")


def test_predicted_labels_of_no_images_are_empty_without_calling_the_model():
    class Refuses(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            raise AssertionError("an empty split must not reach the model")

    labels = predict_labels(Refuses(), torch.empty(0, 1, 8, 8))
    assert labels.dtype == torch.long and labels.shape == (0,)
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    images = torch.rand(5, 1, 8, 8)
    assert torch.equal(predict_labels(linear, images), linear(images).argmax(1))
