"""Attack speed on the bundled CNN (1×128×128, batch 128, CPU).

For each attack: seconds per batch, images per second, and the ratio
time ÷ (steps × floor), where the floor is one forward pass plus the gradient with respect
to the input, the cost no implementation avoids per step. torchattacks 3.5.1 runs on the
same model and batch when it is importable (``make bench`` installs it with --no-deps into
.cache/bench-site, never into the runtime environment). A last table compares allocators.

Usage: python bench/attacks.py [--batch-size 128] [--repeats 3] [--quick] [--only a,b]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from advguard.attacks import create_attack, input_gradient
from advguard.data.synthetic import make_bundled_dataset
from advguard.models import ModelSpec, TrainConfig, build_model, fit_classifier
from advguard.runtime import (
    JEMALLOC_CONF,
    configure_threads,
    find_jemalloc,
    reexec_with_jemalloc,
    tune_glibc_malloc,
)

EPS, ALPHA = 8 / 255, 2 / 255


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``run`` after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def floor_step(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """One forward pass plus the input gradient: the unavoidable cost of an attack step."""
    return input_gradient(model, x, y, targeted=False)[0]


def frozen(model: nn.Module) -> nn.Module:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def bench_model(batch_size: int) -> tuple[nn.Module, Tensor, Tensor]:
    """The bundled CNN, trained briefly so that CW's early abort behaves as it would."""
    data = make_bundled_dataset(image_size=128, seed=0)
    model, _, _ = fit_classifier(data["train"], TrainConfig(epochs=4), show_progress=False)
    test = data["test"]
    index = torch.arange(batch_size) % len(test)
    return model.eval(), test.images[index].contiguous(), test.labels[index]


@dataclass
class Row:
    attack: str
    implementation: str
    steps: int
    seconds: float
    passes: float
    floor: float
    batch_size: int
    success: float
    mean_l2: float
    reference: float | None = None

    def cells(self) -> list[str]:
        versus = f"{self.reference / self.seconds:.2f}×" if self.reference else ""
        return [
            self.attack,
            self.implementation,
            str(self.steps),
            f"{self.passes:.1f}",
            f"{self.seconds:.3f}",
            f"{self.batch_size / self.seconds:.0f}",
            f"{self.seconds / (self.steps * self.floor):.3f}",
            f"{self.seconds / (self.passes * self.floor):.3f}",
            versus,
            f"{self.success:.2f}",
            f"{self.mean_l2:.3f}",
        ]


HEADER = [
    "attack",
    "implementation",
    "steps",
    "passes",
    "s/batch",
    "img/s",
    "ratio (steps)",
    "ratio (passes)",
    "speed-up vs torchattacks",
    "success",
    "mean L2",
]


class PassCounter:
    """Counts forward passes through a model in units of full batches (a 64-image pass of a
    128-image batch counts 0.5), so attacks that stop early or shrink the batch compare fairly."""

    def __init__(self, model: nn.Module, batch_size: int) -> None:
        self.images = 0
        self.batch_size = batch_size
        model.register_forward_pre_hook(self._count)

    def _count(self, module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        self.images += inputs[0].shape[0]

    def measure(self, run: Callable[[], Tensor], repeats: int) -> tuple[float, float, Tensor]:
        """Median seconds, passes per call and the last result of ``run``."""
        result = run()
        self.images = 0
        seconds = median_seconds(run, repeats)
        passes = self.images / (repeats + 1) / self.batch_size
        return seconds, passes, result


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def load_torchattacks():  # type: ignore[no-untyped-def]
    try:
        import torchattacks  # type: ignore[import-not-found]
    except ImportError:
        return None
    return torchattacks


def attack_rows(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    repeats: int,
    quick: bool,
    only: set[str] | None = None,
) -> list[Row]:
    frozen(model)
    floor = median_seconds(lambda: floor_step(model, x, y), max(repeats, 5))
    print(f"floor (forward + input gradient, batch {x.shape[0]}): {floor:.3f} s\n")
    counter = PassCounter(model, x.shape[0])
    ta = load_torchattacks()
    cases: list[tuple[str, str, dict[str, object], int, Callable[[Tensor, Tensor], Tensor] | None]]
    cases = [
        ("fgsm", "fgsm", {"eps": EPS}, 1, ta and ta.FGSM(model, eps=EPS)),
        (
            "pgd",
            "pgd",
            {"eps": EPS, "alpha": ALPHA, "steps": 10},
            10,
            ta and ta.PGD(model, eps=EPS, alpha=ALPHA, steps=10, random_start=True),
        ),
        (
            "bim",
            "bim",
            {"eps": EPS, "alpha": ALPHA, "steps": 10},
            10,
            ta and ta.BIM(model, eps=EPS, alpha=ALPHA, steps=10),
        ),
        (
            "mim",
            "mim",
            {"eps": EPS, "alpha": ALPHA, "steps": 10, "decay": 1.0},
            10,
            ta and ta.MIFGSM(model, eps=EPS, alpha=ALPHA, steps=10, decay=1.0),
        ),
        (
            "cw c=1, 50 steps, no search",
            "cw",
            # The same abort rule as torchattacks (and Carlini's code): the batch's summed loss.
            {"steps": 50, "binary_search_steps": 1, "abort_early": "batch"},
            50,
            ta and ta.CW(model, c=1, kappa=0, steps=50, lr=0.01),
        ),
        (
            "apgd-dlr",
            "apgd",
            {"eps": EPS, "steps": 10, "loss": "dlr"},
            10,
            ta and ta.APGD(model, eps=EPS, steps=10, loss="dlr", n_restarts=1, seed=0),
        ),
        (
            "apgd-t, 3 targets",
            "apgd-t",
            {"eps": EPS, "steps": 10, "n_target_classes": 3},
            30,
            ta and ta.APGDT(model, eps=EPS, steps=10, n_classes=4, n_restarts=1, seed=0),
        ),
        (
            "fab-t, 3 targets",
            "fab-t",
            {"eps": EPS, "steps": 10, "n_target_classes": 3},
            30,
            ta and ta.FAB(model, eps=EPS, steps=10, multi_targeted=True, n_classes=4, seed=0),
        ),
        (
            # torchattacks' standard AutoAttack: 10 steps per gradient attack (its default).
            "autoattack standard, 10 steps",
            "autoattack",
            {"eps": EPS, "steps": 10, "n_target_classes": 3},
            70,
            ta and ta.AutoAttack(model, eps=EPS, n_classes=4, version="standard", seed=0),
        ),
        # Decision-based: forward passes only (labels), so "steps" counts queries; torchattacks
        # has no HopSkipJump.
        ("hopskipjump, 250 queries", "hopskipjump", {"max_queries": 250}, 250, None),
    ]
    rows = []

    def row(
        label: str,
        implementation: str,
        steps: int,
        run: Callable[[], Tensor],
        reference: float | None = None,
    ) -> Row:
        seconds, passes, x_adv = counter.measure(run, repeats)
        x_adv = x_adv.detach()  # torchattacks may hand back a tensor that requires grad
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        l2 = (x_adv - x).flatten(1).norm(dim=1)
        mean_l2 = float(l2[fooled].mean()) if fooled.any() else float("nan")
        return Row(
            label,
            implementation,
            steps,
            seconds,
            passes,
            floor,
            x.shape[0],
            float(fooled.float().mean()),
            mean_l2,
            reference,
        )

    for label, name, params, steps, reference_attack in cases:
        if only is not None and name not in only:
            continue
        reference = None
        if reference_attack is not None:
            rows.append(row(label, "torchattacks 3.5.1", steps, lambda a=reference_attack: a(x, y)))
            reference = rows[-1].seconds
        ours = create_attack(name, model, **params)
        rows.append(row(label, "advguard", steps, lambda a=ours: a(x, y), reference))
    if only is not None:
        return rows
    for mode, label in (("image", "per-image abort (default)"), ("never", "no early abort")):
        attack = create_attack("cw", model, steps=50, binary_search_steps=1, abort_early=mode)
        rows.append(
            row("cw c=1, 50 steps, no search", f"advguard, {label}", 50, lambda a=attack: a(x, y))
        )
    if not quick:
        defaults = create_attack("cw", model)
        rows.append(row("cw defaults (5 searches × 50)", "advguard", 250, lambda: defaults(x, y)))
    rows += speedup_rows(model, x, y, floor, repeats, quick)
    return rows


def speedup_rows(
    model: nn.Module, x: Tensor, y: Tensor, floor: float, repeats: int, quick: bool
) -> list[Row]:
    """PGD-10 with plain NCHW weights (what channels-last saves) and with torch.compile.

    Both ratios are against the floor of the model as shipped (channels-last, eager).
    """
    variants = {
        "advguard, NCHW weights": frozen(copy.deepcopy(model)).to(
            memory_format=torch.contiguous_format
        )
    }
    if not quick:
        variants["advguard, torch.compile"] = torch.compile(model)
    rows = []
    for label, variant in variants.items():
        attack = create_attack("pgd", variant, eps=EPS, alpha=ALPHA, steps=10)
        start = time.perf_counter()
        x_adv = attack(x, y)  # warm-up (compiles the graphs for torch.compile)
        print(f"{label} warm-up: {time.perf_counter() - start:.1f} s (not counted)")
        seconds = median_seconds(lambda a=attack: a(x, y), repeats)
        with torch.no_grad():
            success = float((model(x_adv).argmax(1) != y).float().mean())
        rows.append(
            Row(
                "pgd",
                label,
                10,
                seconds,
                10.0,
                floor,
                x.shape[0],
                success,
                float((x_adv - x).flatten(1).norm(dim=1).mean()),
            )
        )
    return rows


def allocator_probe(batch_size: int, tune: bool) -> None:
    """Child process: print the floor and PGD-10 time under this process's allocator."""
    configure_threads()
    if tune:
        tune_glibc_malloc()
    model = frozen(build_model(ModelSpec(class_names=["a", "b", "c", "d"])))
    x, y = torch.rand(batch_size, 1, 128, 128), torch.randint(0, 4, (batch_size,))
    pgd = create_attack("pgd", model, eps=EPS, alpha=ALPHA, steps=10)
    floor = median_seconds(lambda: floor_step(model, x, y), 5)
    attack = median_seconds(lambda: pgd(x, y), 2)
    print(json.dumps({"floor": floor, "pgd": attack}))


def allocator_table(batch_size: int) -> None:
    """Floor and PGD-10 in fresh processes: default glibc, glibc tuned, jemalloc."""
    probe = [sys.executable, __file__, "--allocator-probe", "--batch-size", str(batch_size)]
    # name -> (extra environment, extra arguments)
    settings: dict[str, tuple[dict[str, str], list[str]]] = {
        "glibc malloc (default)": ({}, []),
        "glibc tuned in-process (advguard without jemalloc)": ({}, ["--tune-malloc"]),
    }
    library = find_jemalloc()
    if library:
        settings["jemalloc (advguard CLI when installed)"] = (
            {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF},
            [],
        )
    results = {}
    for name, (extra_env, extra_args) in settings.items():
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
        env.update(extra_env)
        output = subprocess.run(
            probe + extra_args, env=env, capture_output=True, text=True, check=True
        ).stdout
        results[name] = json.loads(output.strip().splitlines()[-1])
    base = results["glibc malloc (default)"]
    print(f"\nAllocators (PGD-10 and the floor, batch {batch_size}, fresh process each):")
    print_table(
        ["allocator", "floor s", "PGD-10 s", "speed-up vs glibc default"],
        [
            [name, f"{r['floor']:.3f}", f"{r['pgd']:.3f}", f"{base['pgd'] / r['pgd']:.2f}×"]
            for name, r in results.items()
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip torch.compile and CW defaults")
    parser.add_argument(
        "--only", default=None, help="these attacks only (e.g. autoattack,apgd); no extra tables"
    )
    parser.add_argument("--allocator-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tune-malloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.allocator_probe:
        allocator_probe(args.batch_size, args.tune_malloc)
        return
    reexec_with_jemalloc([sys.executable, __file__, *sys.argv[1:]])
    threads = configure_threads()
    print(
        f"torch {torch.__version__}, {threads} threads, "
        f"allocator: {'jemalloc' if 'jemalloc' in os.environ.get('LD_PRELOAD', '') else 'glibc'}"
    )
    model, x, y = bench_model(args.batch_size)
    only = None if args.only is None else set(args.only.split(","))
    rows = attack_rows(model, x, y, args.repeats, args.quick, only)
    print_table(HEADER, [row.cells() for row in rows])
    print(
        "ratio (steps) = s/batch ÷ (steps × floor); ratio (passes) divides by the forward "
        "passes actually run instead (early stops and shrinking batches run fewer)."
    )
    if only is None:
        allocator_table(args.batch_size)


if __name__ == "__main__":
    main()
