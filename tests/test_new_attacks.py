"""DeepFool, APGD-CE and Square: invariants, parameter checks and strength on a small CNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advguard.attacks import APGD, ATTACKS, PGD, AttackError, DeepFool, Square
from advguard.evaluation import random_targets, run_attack

EPS = 8 / 255
NEW = ["apgd", "deepfool", "square"]
LINF_NEW = ["apgd", "square"]


def batch(trained, n=16):
    return trained.correct.images[:n], trained.correct.labels[:n]


class GradientFreeModel(nn.Module):
    """Wraps a model and refuses any forward pass that could give a gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.calls = 0
        self.images = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("the model was asked for a gradient")
        self.calls += 1
        self.images += x.shape[0]
        return self.inner(x)


def test_registered():
    assert ATTACKS["deepfool"] is DeepFool and DeepFool.norm == "l2"
    assert ATTACKS["apgd"] is APGD and APGD.norm == "linf"
    assert ATTACKS["square"] is Square and Square.norm == "linf"


@pytest.mark.parametrize("name", NEW)
def test_shape_dtype_range(name, trained_small):
    x, y = batch(trained_small, 8)
    fast = {"apgd": {"steps": 5}, "deepfool": {"steps": 10}, "square": {"n_queries": 50}}[name]
    x_adv = ATTACKS[name](trained_small.model, **fast)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert not x_adv.requires_grad


@pytest.mark.parametrize("name", LINF_NEW)
def test_linf_bound(name, trained_small):
    x, y = batch(trained_small)
    fast = {"apgd": {"steps": 5}, "square": {"n_queries": 100}}[name]
    for eps in (2 / 255, EPS):
        x_adv = ATTACKS[name](trained_small.model, eps=eps, **fast)(x, y)
        assert float((x_adv - x).abs().max()) <= eps + 1e-6
        assert float((x_adv - x).abs().max()) > eps / 2


@pytest.mark.parametrize("name", NEW)
def test_same_seed_same_output(name, trained_small):
    x, y = batch(trained_small, 8)
    fast = {"apgd": {"steps": 5}, "deepfool": {"steps": 10}, "square": {"n_queries": 100}}[name]
    first = ATTACKS[name](trained_small.model, seed=5, **fast)(x, y)
    second = ATTACKS[name](trained_small.model, seed=5, **fast)(x, y)
    assert torch.equal(first, second)


@pytest.mark.parametrize("name", LINF_NEW)
def test_seed_changes_random_search(name, trained_small):
    x, y = batch(trained_small, 8)
    fast = {"apgd": {"steps": 3}, "square": {"n_queries": 20}}[name]
    a = ATTACKS[name](trained_small.model, seed=1, **fast)(x, y)
    b = ATTACKS[name](trained_small.model, seed=2, **fast)(x, y)
    assert not torch.equal(a, b)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("deepfool", {"steps": 0}, "steps"),
        ("deepfool", {"overshoot": -0.1}, "overshoot"),
        ("deepfool", {"num_classes": 1}, "num_classes"),
        ("deepfool", {"num_classes": 2.5}, "num_classes"),
        ("deepfool", {"targeted": True}, "untargeted"),
        ("apgd", {"eps": -0.1}, "eps"),
        ("apgd", {"steps": 0}, "steps"),
        ("apgd", {"n_restarts": 0}, "n_restarts"),
        ("apgd", {"rho": 1.5}, "rho"),
        ("apgd", {"rho": float("nan")}, "rho"),
        ("square", {"eps": -0.1}, "eps"),
        ("square", {"n_queries": 0}, "n_queries"),
        ("square", {"p_init": 0.0}, "p_init"),
        ("square", {"p_init": 1.5}, "p_init"),
    ],
)
def test_bad_parameters_are_refused(name, params, message, trained_small):
    with pytest.raises(AttackError, match=message):
        ATTACKS[name](trained_small.model, **params)


@pytest.mark.parametrize("name", NEW)
def test_defaults_and_params(name, trained_small):
    attack = ATTACKS[name](trained_small.model)
    params = attack.params()
    assert params["seed"] == 0 and params["targeted"] is False
    expected = {
        "deepfool": {"steps": 50, "overshoot": 0.02, "num_classes": None},
        "apgd": {"eps": EPS, "steps": 10, "n_restarts": 1, "rho": 0.75},
        "square": {"eps": EPS, "n_queries": 1000, "p_init": 0.8},
    }[name]
    assert {key: params[key] for key in expected} == expected


def outcome(trained, attack, **kwargs):
    return run_attack(trained.model, attack, trained.correct, show_progress=False, **kwargs)


def test_apgd_beats_pgd(trained_small):
    model, n = trained_small.model, len(trained_small.correct)
    pgd = outcome(trained_small, PGD(model, eps=EPS)).success_rate
    apgd = outcome(trained_small, APGD(model, eps=EPS)).success_rate
    # 8/255 nearly saturates on this small model; 4/255 with 20 steps each shows the gap.
    pgd_20 = outcome(trained_small, PGD(model, eps=4 / 255, steps=20)).success_rate
    apgd_20 = outcome(trained_small, APGD(model, eps=4 / 255, steps=20)).success_rate
    print(
        f"success at eps 8/255 (10 steps): PGD {pgd:.2%}, APGD {apgd:.2%}; "
        f"at 4/255 (20 steps): PGD {pgd_20:.2%}, APGD {apgd_20:.2%}"
    )
    assert apgd >= 0.90
    # Both are near 100 % and, for some trainings of the fixture (not bit-reproducible on
    # CPU), APGD misses one near-robust image that PGD breaks; allow that one image, no more.
    assert apgd >= pgd - 1 / n - 1e-6
    assert apgd_20 >= pgd_20 - 1 / n - 1e-6


def test_apgd_targeted_reaches_target(trained_small):
    model, data = trained_small.model, trained_small.correct
    targets = random_targets(data.labels, trained_small.spec.num_classes, seed=0)
    rates = {}
    for attack in (
        PGD(model, eps=EPS, steps=20, targeted=True),
        APGD(model, eps=EPS, steps=20, targeted=True),
    ):
        result = outcome(trained_small, attack, targets=targets)
        rates[attack.name] = float(result.success.float().mean())
    print(f"targeted success: PGD {rates['pgd']:.2%}, APGD {rates['apgd']:.2%}")
    assert rates["apgd"] >= 0.70
    assert rates["apgd"] >= rates["pgd"] - 1 / len(data) - 1e-6  # one image, as above


def test_square_is_black_box_and_succeeds(trained_small):
    # eval(): the attack restores the wrapper's mode, which would otherwise be training mode.
    wrapped = GradientFreeModel(trained_small.model).eval()
    attack = Square(wrapped, eps=EPS, n_queries=1000)
    x, y = trained_small.correct.images, trained_small.correct.labels
    x_adv = attack(x, y)
    assert wrapped.calls > 0 and not trained_small.model.training
    assert attack.queries is not None
    assert int(attack.queries.max()) <= 1000
    assert wrapped.images <= 1000 * len(x) + 1  # + the one-image label probe
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    with torch.no_grad():
        fooled = trained_small.model(x_adv).argmax(1) != y
    rate = float(fooled.float().mean())
    queries = attack.queries.float()
    print(
        f"Square success {rate:.2%}, queries mean {float(queries.mean()):.1f}, "
        f"median over successes {float(queries[fooled].median()):.0f}"
    )
    assert rate >= 0.50
    # Per-image stop: a broken image used fewer queries than the budget, or exactly it at most.
    assert bool((attack.queries[fooled] <= 1000).all())


def test_square_targeted(trained_small):
    model = trained_small.model
    x, y = batch(trained_small, 16)
    targets = random_targets(y, trained_small.spec.num_classes, seed=0)
    x_adv = Square(model, eps=EPS, n_queries=300, targeted=True)(x, targets)
    assert float((x_adv - x).abs().max()) <= EPS + 1e-6
    with torch.no_grad():
        reached = (model(x_adv).argmax(1) == targets).float().mean()
    assert float(reached) > 0.0


def test_deepfool_succeeds_with_smaller_l2_than_pgd(trained_small):
    model = trained_small.model
    deepfool = outcome(trained_small, DeepFool(model))
    pgd = outcome(trained_small, PGD(model, eps=EPS))
    df_l2 = float(deepfool.l2[deepfool.success].mean())
    pgd_l2 = float(pgd.l2[pgd.success].mean())
    print(f"DeepFool success {deepfool.success_rate:.2%}, mean L2 {df_l2:.3f}; PGD {pgd_l2:.3f}")
    assert deepfool.success_rate >= 0.90
    assert df_l2 < pgd_l2


def test_deepfool_top_k_candidates(trained_small):
    x, y = batch(trained_small, 16)
    x_adv = DeepFool(trained_small.model, num_classes=2)(x, y)
    with torch.no_grad():
        fooled = trained_small.model(x_adv).argmax(1) != y
    assert float(fooled.float().mean()) >= 0.5
