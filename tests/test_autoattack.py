"""The AutoAttack family (APGD with the DLR loss, APGD-T, FAB-T, the L2-ball attacks and
the AutoAttack composite) and the decision-based HopSkipJump: invariants, parameter checks,
strength on a small CNN, and robust accuracy against torchattacks 3.5.1 on the same
images."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from advguard.attacks import (
    APGD,
    APGDL2,
    APGDT,
    APGDTL2,
    ATTACKS,
    PGD,
    PGDL2,
    AttackError,
    SquareL2,
    attack_defaults,
)
from advguard.attacks.apgd import dlr_loss, targeted_dlr_loss
from advguard.evaluation import run_attack

EPS = 8 / 255
L2_EPS = 0.5
FAST = {
    "apgd-t": {"steps": 5, "n_target_classes": 2},
    "apgd-l2": {"steps": 5},
    "apgd-t-l2": {"steps": 5, "n_target_classes": 2},
    "pgd-l2": {"steps": 5},
    "square-l2": {"n_queries": 50},
}
BALL_NORM = {
    "apgd-t": "linf",
    "apgd-l2": "l2",
    "apgd-t-l2": "l2",
    "pgd-l2": "l2",
    "square-l2": "l2",
}


def batch(trained, n=16):
    return trained.correct.images[:n], trained.correct.labels[:n]


def distance(x_adv: torch.Tensor, x: torch.Tensor, norm: str) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    return delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)


def test_registered_with_their_norms_and_defaults():
    assert ATTACKS["apgd-t"] is APGDT and APGDT.norm == "linf"
    assert ATTACKS["apgd-l2"] is APGDL2 and ATTACKS["apgd-t-l2"] is APGDTL2
    assert ATTACKS["pgd-l2"] is PGDL2 and ATTACKS["square-l2"] is SquareL2
    assert {APGDL2.norm, APGDTL2.norm, PGDL2.norm, SquareL2.norm} == {"l2"}
    # An L2 variant's default budget is an L2 radius; its other defaults are its parent's.
    assert attack_defaults(APGDL2) == {**attack_defaults(APGD), "eps": L2_EPS}
    assert attack_defaults(APGDTL2)["eps"] == L2_EPS
    assert attack_defaults(APGDTL2)["n_target_classes"] == 9


def test_dlr_losses_ignore_how_the_logits_are_shifted_and_scaled():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=generator)
    y = torch.randint(0, 4, (32,), generator=generator)
    target = (y + 1) % 4
    for loss in (lambda z: dlr_loss(z, y), lambda z: targeted_dlr_loss(z, y, target)):
        assert torch.allclose(loss(logits), loss(3.0 * logits + 7.0), atol=1e-5)
    # Correct with a margin: negative; misclassified: positive.
    sure = torch.tensor([[5.0, 1.0, 0.0, -1.0]])
    assert dlr_loss(sure, torch.tensor([0])) < 0 < dlr_loss(sure, torch.tensor([1]))


@pytest.mark.parametrize("name", sorted(FAST))
def test_stays_in_its_ball_and_in_range(name, trained_small):
    x, y = batch(trained_small)
    norm = BALL_NORM[name]
    for eps in (EPS, 2 * EPS) if norm == "linf" else (0.25, L2_EPS):
        x_adv = ATTACKS[name](trained_small.model, eps=eps, **FAST[name])(x, y)
        assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
        assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
        moved = distance(x_adv, x, norm)
        assert float(moved.max()) <= eps * (1 + 1e-5)
        assert float(moved.max()) > eps / 2  # it used its budget


@pytest.mark.parametrize("name", sorted(FAST))
def test_same_seed_same_output_and_zero_budget_changes_nothing(name, trained_small):
    x, y = batch(trained_small, 8)
    first = ATTACKS[name](trained_small.model, seed=3, **FAST[name])(x, y)
    assert torch.equal(first, ATTACKS[name](trained_small.model, seed=3, **FAST[name])(x, y))
    assert not torch.equal(first, ATTACKS[name](trained_small.model, seed=4, **FAST[name])(x, y))
    assert torch.equal(ATTACKS[name](trained_small.model, eps=0.0, **FAST[name])(x, y), x)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("apgd", {"loss": "hinge"}, "loss must be"),
        ("apgd", {"loss": "dlr", "targeted": True}, "use apgd-t"),
        ("apgd-t", {"n_target_classes": 0}, "n_target_classes"),
        ("apgd-l2", {"eps": -1.0}, "eps"),
        ("pgd-l2", {"alpha": 0.0}, "alpha"),
        ("pgd-l2", {"steps": 0}, "steps"),
    ],
)
def test_bad_parameters_are_refused(name, params, message, trained_small):
    with pytest.raises(AttackError, match=message):
        ATTACKS[name](trained_small.model, **params)


def test_dlr_losses_refuse_models_with_too_few_classes():
    three_classes = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    with pytest.raises(AttackError, match="needs 4 classes"):
        APGDT(three_classes)(x, y)
    two_classes = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(AttackError, match="needs 3 classes"):
        APGD(two_classes, loss="dlr")(x, y)


def success(trained, attack) -> float:
    return run_attack(trained.model, attack, trained.correct, show_progress=False).success_rate


def test_apgd_dlr_and_apgd_t_are_as_strong_as_pgd(trained_small):
    """On the small CNN, at 4/255 with 20 steps: APGD-DLR and APGD-T break at least as many
    correctly classified images as PGD (one near-robust image of slack, as for APGD-CE)."""
    model, n = trained_small.model, len(trained_small.correct)
    eps = 4 / 255
    pgd = success(trained_small, PGD(model, eps=eps, alpha=eps / 4, steps=20))
    dlr = success(trained_small, APGD(model, eps=eps, steps=20, loss="dlr"))
    targeted = success(trained_small, APGDT(model, eps=eps, steps=20, n_target_classes=3))
    print(f"success at 4/255: PGD {pgd:.2%}, APGD-DLR {dlr:.2%}, APGD-T {targeted:.2%}")
    assert dlr >= pgd - 1 / n - 1e-6
    assert targeted >= pgd - 1 / n - 1e-6


def test_l2_attacks_grow_with_the_radius_and_apgd_beats_pgd(trained_small):
    model, n = trained_small.model, len(trained_small.correct)
    rates = {}
    for eps in (0.1, 0.3):
        rates["pgd", eps] = success(trained_small, PGDL2(model, eps=eps, alpha=eps / 4, steps=20))
        rates["apgd", eps] = success(trained_small, APGDL2(model, eps=eps, steps=20))
    print({f"{name} {eps}": f"{rate:.2%}" for (name, eps), rate in rates.items()})
    assert rates["pgd", 0.3] >= rates["pgd", 0.1] and rates["apgd", 0.3] >= rates["apgd", 0.1]
    assert rates["apgd", 0.3] > 0.5
    assert rates["apgd", 0.3] >= rates["pgd", 0.3] - 1 / n - 1e-6


class LabelOnlyModel(nn.Module):
    """Wraps a model and answers top-1 labels only (as one-hot rows), counting the images
    it is asked about and refusing any request that could give a gradient."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.images = 0
        # Take the model's mode: the attack restores the wrapper's mode when it ends, and
        # a fresh module's (training) would leave the shared model with dropout on.
        self.train(model.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or x.requires_grad:
            raise AssertionError("the model was asked for a gradient")
        self.images += x.shape[0]
        logits = self.inner(x)
        return nn.functional.one_hot(logits.argmax(1), logits.shape[1]).float()


def test_hopskipjump_uses_labels_only_and_gets_closer_with_more_queries(trained_small):
    spread = torch.linspace(0, len(trained_small.correct) - 1, 8).long()  # every class
    x, y = trained_small.correct.images[spread], trained_small.correct.labels[spread]
    results = {}
    for budget in (300, 1500):
        model = LabelOnlyModel(trained_small.model)
        attack = ATTACKS["hopskipjump"](model, max_queries=budget)
        x_adv = attack(x, y)
        assert robust_accuracy(trained_small.model, x_adv, y) == 0, "all found adversarial"
        assert int(attack.queries.max()) <= budget
        # Every image sent to the model is counted (plus the base class's one-image probe).
        assert model.images == int(attack.queries.sum()) + 1
        results[budget] = float(distance(x_adv, x, "l2").median())
    print(f"HopSkipJump median L2: {results}")
    assert results[1500] < 0.6 * results[300]


def test_hopskipjump_refuses_targets_and_bad_budgets(trained_small):
    with pytest.raises(AttackError, match="untargeted"):
        ATTACKS["hopskipjump"](trained_small.model, targeted=True)
    with pytest.raises(AttackError, match="max_queries"):
        ATTACKS["hopskipjump"](trained_small.model, max_queries=0)


@pytest.mark.parametrize(
    ("name", "eps"), [("apgd", 2 / 255), ("apgd-t", 2 / 255), ("apgd-l2", 0.2)]
)
def test_stopping_at_success_breaks_the_same_images_with_fewer_gradients(name, eps, trained_small):
    """Each image's APGD run is its own: stopping the broken ones early (AutoAttack's use)
    leaves the others' runs as they were, so the same images break, for less work."""
    model = trained_small.model
    x, y = trained_small.correct.images[:64], trained_small.correct.labels[:64]
    seen: list[int] = []
    hook = model.register_forward_pre_hook(lambda _, inputs: seen.append(len(inputs[0])))
    settings = {"eps": eps, "steps": 20, **({"n_target_classes": 3} if name == "apgd-t" else {})}
    try:
        full = ATTACKS[name](model, **settings)(x, y)
        work_full, seen[:] = sum(seen), []
        early = ATTACKS[name](model, stop_at_success=True, **settings)(x, y)
        work_early = sum(seen)
    finally:
        hook.remove()
    with torch.no_grad():
        broken_full, broken_early = (model(adv).argmax(1) != y for adv in (full, early))
    assert 0 < int(broken_full.sum()) < len(y)  # a budget where some but not all break
    assert torch.equal(broken_full, broken_early)
    assert work_early < 0.9 * work_full
    norm = "l2" if name.endswith("l2") else "linf"
    assert float(distance(early, x, norm).max()) <= eps * (1 + 1e-5)


def test_autoattack_runs_each_component_on_what_the_previous_left(trained_small):
    x, y = batch(trained_small, 32)
    attack = ATTACKS["autoattack"](trained_small.model, eps=2 / 255, steps=5, n_queries=50)
    x_adv = attack(x, y)
    assert [c.attack for c in attack.components] == ["apgd", "apgd-t", "fab-t", "square"]
    robust = [c.robust for c in attack.components]
    assert robust == sorted(robust, reverse=True)  # never more robust after a component
    assert robust[-1] == round(robust_accuracy(trained_small.model, x_adv, y) * len(x))
    assert float(distance(x_adv, x, "linf").max()) <= 2 / 255 + 1e-6
    assert "AutoAttack standard" in str(attack.params()["version"])
    l2 = ATTACKS["autoattack-l2"](trained_small.model, eps=0.2, steps=5, n_queries=50)
    l2(x, y)
    assert [c.attack for c in l2.components] == ["apgd-l2", "apgd-t-l2", "fab-t-l2", "square-l2"]


BASELINE_SITE = Path(__file__).resolve().parents[1] / ".cache" / "bench-site"


@pytest.fixture(autouse=True)
def global_random_state_untouched():
    """torchattacks seeds the global generator (FAB, Square): put it back afterwards, so
    that the tests after these run as they would without them."""
    state = torch.random.get_rng_state()
    yield
    torch.random.set_rng_state(state)


@pytest.fixture(scope="module")
def torchattacks():
    """torchattacks 3.5.1, the reference: installed ``--no-deps`` beside the venv by
    ``make test`` (``make baselines``), never a dependency of advguard."""
    if not (BASELINE_SITE / "torchattacks").is_dir():
        pytest.skip(f"torchattacks is not in {BASELINE_SITE} (run `make baselines`)")
    sys.path.insert(0, str(BASELINE_SITE))
    try:
        import torchattacks as module  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BASELINE_SITE))
    assert module.__version__ == "3.5.1"
    return module


def robust_accuracy(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x_adv`` still classified as ``y``, in evaluation mode (as attacks see it)."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x_adv).argmax(1) == y).float().mean())
    model.train(was_training)
    return accuracy


SQUARE_QUERIES = 1000
"""Square alone is compared at 1,000 queries (5,000 inside AutoAttack): the suite's time."""


def reference_attacks(torchattacks, model: nn.Module, norm: str, eps: float) -> dict:
    """torchattacks' AutoAttack and its components as it builds them (10 steps, one
    restart), for a 4-class model."""
    common = {"eps": eps, "norm": norm, "seed": 0}
    return {
        "apgd": torchattacks.APGD(model, loss="ce", n_restarts=1, **common),
        "apgd-t": torchattacks.APGDT(model, n_classes=4, n_restarts=1, **common),
        "fab-t": torchattacks.FAB(model, multi_targeted=True, n_classes=4, n_restarts=1, **common),
        "square": torchattacks.Square(model, n_queries=SQUARE_QUERIES, **common),
        "autoattack": torchattacks.AutoAttack(model, n_classes=4, version="standard", **common),
    }


def our_attacks(model: nn.Module, norm: str, eps: float) -> dict:
    """Ours with the same settings."""
    suffix = "" if norm == "Linf" else "-l2"
    gradient = {"eps": eps, "steps": 10}
    attacks = {
        "apgd": ATTACKS["apgd" + suffix](model, loss="ce", **gradient),
        "apgd-t": ATTACKS["apgd-t" + suffix](model, n_target_classes=3, **gradient),
        "fab-t": ATTACKS["fab-t" + suffix](model, n_target_classes=3, **gradient),
        "autoattack": ATTACKS["autoattack" + suffix](model, n_target_classes=3, **gradient),
        "square": ATTACKS["square" + suffix](model, eps=eps, n_queries=SQUARE_QUERIES),
    }
    return attacks


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 3 / 255), ("L2", 0.4)])
def test_autoattack_and_its_components_against_torchattacks(trained_small, torchattacks, norm, eps):
    """On the same model and images (64 the model gets right), each attack leaves at most
    one image more robust than its torchattacks 3.5.1 counterpart, AutoAttack included
    (ours at least as strong), and never leaves its ball."""
    model = trained_small.model
    x, y = trained_small.correct.images[:64], trained_small.correct.labels[:64]
    assert len(x) == 64
    theirs = reference_attacks(torchattacks, model, norm, eps)
    rows = []
    for name, attack in our_attacks(model, norm, eps).items():
        ours_adv = attack(x, y)
        assert float(distance(ours_adv, x, "linf" if norm == "Linf" else "l2").max()) <= eps * (
            1 + 1e-5
        ), name
        ours = robust_accuracy(model, ours_adv, y)
        reference = robust_accuracy(model, theirs[name](x, y), y)
        rows.append((name, ours, reference))
    print(
        "\n".join(
            f"{norm} ε {eps:.4f} {n:10s} ours {o:6.2%}  torchattacks {r:6.2%}" for n, o, r in rows
        )
    )
    for name, ours, reference in rows:
        assert ours <= reference + 1 / len(x) + 1e-9, (name, ours, reference)
    # Its first part runs on the same images with the same seed: it can only add to it.
    robust = {name: ours for name, ours, _ in rows}
    assert robust["autoattack"] <= robust["apgd"]
