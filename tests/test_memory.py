"""Batches cut to the network's memory: the measurement, the cut, and unchanged results."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from advguard.attacks import create_attack
from advguard.config import get_settings
from advguard.data.dataset import ImageDataset
from advguard.evaluation import run_attack
from advguard.models.memory import activation_bytes_per_image, fitting_batch_size
from advguard.models.training import predict_logits

SIZE = 64
CHANNELS = 64


def wide_network() -> nn.Module:
    """One wide convolution: per image it saves its 1-channel input (for the convolution's
    weight gradient) and its 64-channel output (for the ReLU), which flattening and the
    linear layer reuse without a copy."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, CHANNELS, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(CHANNELS * SIZE * SIZE, 3),
    )


def test_activations_are_counted_once_and_the_weights_not_at_all() -> None:
    per_image = activation_bytes_per_image(wide_network(), (1, SIZE, SIZE))
    assert per_image == 4 * SIZE * SIZE * (1 + CHANNELS)


def test_measuring_leaves_the_network_as_it_was() -> None:
    network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten()).train()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    activation_bytes_per_image(network, (1, 16, 16))
    assert network.training
    for name, value in network.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(parameter.grad is None for parameter in network.parameters())


def test_the_batch_is_cut_to_the_budget_never_below_one() -> None:
    network = wide_network()
    per_image = activation_bytes_per_image(network, (1, SIZE, SIZE))
    assert fitting_batch_size(network, (1, SIZE, SIZE), 128, budget_bytes=3 * per_image) == 3
    assert fitting_batch_size(network, (1, SIZE, SIZE), 2, budget_bytes=3 * per_image) == 2
    assert fitting_batch_size(network, (1, SIZE, SIZE), 128, budget_bytes=per_image // 2) == 1
    # The default budget (1 GiB) takes all 128 of these 1 MiB images.
    assert fitting_batch_size(network, (1, SIZE, SIZE), 128) == 128


@pytest.fixture
def four_mib_budget(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``ADVGUARD_BATCH_MEMORY_MB=4`` for one test; the settings are read afresh around it."""
    monkeypatch.setenv("ADVGUARD_BATCH_MEMORY_MB", "4")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


def test_a_cut_batch_gives_the_same_results(four_mib_budget: None) -> None:
    """With a budget of three images the attack and the prediction run in batches of three
    and answer what one batch of all ten answers."""
    network = wide_network().eval()
    images = torch.rand(10, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(10) % 3
    # 4 MiB holds three of these images (1.02 MiB each), not four.
    assert fitting_batch_size(network, (1, SIZE, SIZE), 128) == 3
    attack = create_attack("fgsm", network, eps=8 / 255)
    batches: list[int] = []
    outcome = run_attack(
        network,
        attack,
        ImageDataset(images, labels, ["a", "b", "c"]),
        progress=lambda done, total: batches.append(done),
        show_progress=False,
    )
    assert batches == [3, 6, 9, 10]
    in_one_batch = attack(images, labels)
    assert torch.allclose(outcome.adversarial, in_one_batch, atol=1e-6)
    with torch.no_grad():
        logits = network(images)
    assert torch.allclose(predict_logits(network, images), logits, atol=1e-5)
    assert torch.equal(outcome.predicted_after, network(in_one_batch).argmax(1))
