"""Attack speed on the bundled CNN (1×128×128, batch 128, CPU).

For each attack: seconds per batch, images per second, and the ratio
time ÷ (steps × floor), where the floor is one forward pass plus the gradient with respect
to the input, the cost no implementation avoids per step. torchattacks 3.5.1 runs on the
same model and batch when it is importable (``make bench`` installs it with --no-deps into
.cache/bench-site, never into the runtime environment). A last table compares allocators.

Usage: python bench/attacks.py [--batch-size 128] [--repeats 3] [--quick]
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
import torch.nn.functional as F
from torch import Tensor, nn

from advguard.attacks import create_attack
from advguard.data import split_holdout
from advguard.data.synthetic import make_bundled_dataset
from advguard.models import ModelSpec, TrainConfig, build_model, train_classifier
from advguard.runtime import JEMALLOC_CONF, configure_threads, find_jemalloc, reexec_with_jemalloc

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
    probe = x.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(F.cross_entropy(model(probe), y, reduction="sum"), probe)
    return gradient


def frozen(model: nn.Module) -> nn.Module:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()


def bench_model(batch_size: int) -> tuple[nn.Module, Tensor, Tensor]:
    """The bundled CNN, trained briefly so that CW's early abort behaves as it would."""
    data = make_bundled_dataset(image_size=128, seed=0)
    train, val = split_holdout(data["train"], 0.1, seed=0)
    model = build_model(ModelSpec(class_names=train.class_names))
    train_classifier(model, train, val, TrainConfig(epochs=4), show_progress=False)
    test = data["test"]
    index = torch.arange(batch_size) % len(test)
    return model.eval(), test.images[index].contiguous(), test.labels[index]


@dataclass
class Row:
    attack: str
    implementation: str
    steps: int
    seconds: float
    floor: float
    batch_size: int
    reference: float | None = None

    def cells(self) -> list[str]:
        ratio = self.seconds / (self.steps * self.floor)
        versus = f"{self.reference / self.seconds:.2f}×" if self.reference else ""
        return [
            self.attack,
            self.implementation,
            str(self.steps),
            f"{self.seconds:.3f}",
            f"{self.batch_size / self.seconds:.0f}",
            f"{ratio:.3f}",
            versus,
        ]


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


def attack_rows(model: nn.Module, x: Tensor, y: Tensor, repeats: int, quick: bool) -> list[Row]:
    frozen(model)
    floor = median_seconds(lambda: floor_step(model, x, y), max(repeats, 5))
    n = x.shape[0]
    ta = load_torchattacks()
    cases: list[tuple[str, str, dict[str, object], int, Callable[[], object] | None]] = [
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
            "cw 50 steps, no search, no abort",
            "cw",
            {"steps": 50, "binary_search_steps": 1, "abort_early": False},
            50,
            ta and ta.CW(model, c=1, kappa=0, steps=50, lr=0.01),
        ),
    ]
    rows = []
    for label, name, params, steps, reference_attack in cases:
        ours = create_attack(name, model, **params)
        seconds = median_seconds(lambda ours=ours: ours(x, y), repeats)
        reference = None
        if reference_attack is not None:
            reference = median_seconds(lambda a=reference_attack: a(x, y), repeats)
            rows.append(Row(label, "torchattacks 3.5.1", steps, reference, floor, n))
        rows.append(Row(label, "advguard", steps, seconds, floor, n, reference))
    cw_variants = [("cw 50 steps, no search, early abort", {"steps": 50, "binary_search_steps": 1})]
    if not quick:
        cw_variants.append(("cw defaults (5 searches × 50, abort)", {}))
    for label, params in cw_variants:
        attack = create_attack("cw", model, **params)
        steps = attack.steps * attack.binary_search_steps  # type: ignore[attr-defined]
        rows.append(
            Row(label, "advguard", steps, median_seconds(lambda a=attack: a(x, y), 1), floor, n)
        )
    rows += speedup_rows(model, x, y, floor, repeats, quick)
    print(f"floor (forward + input gradient, batch {n}): {floor:.3f} s\n")
    return rows


def speedup_rows(
    model: nn.Module, x: Tensor, y: Tensor, floor: float, repeats: int, quick: bool
) -> list[Row]:
    """PGD-10 with plain NCHW weights (what channels-last saves) and with torch.compile.

    Both ratios are against the floor of the model as shipped (channels-last, eager).
    """
    rows = []
    params = {"eps": EPS, "alpha": ALPHA, "steps": 10}
    nchw = frozen(copy.deepcopy(model)).to(memory_format=torch.contiguous_format)
    attack = create_attack("pgd", nchw, **params)
    rows.append(
        Row(
            "pgd",
            "advguard, NCHW weights",
            10,
            median_seconds(lambda: attack(x, y), repeats),
            floor,
            x.shape[0],
        )
    )
    if not quick:
        compiled = torch.compile(model)
        attack = create_attack("pgd", compiled, **params)
        start = time.perf_counter()
        attack(x, y)  # compiles the forward and backward graphs
        print(f"torch.compile warm-up: {time.perf_counter() - start:.1f} s (not counted)")
        rows.append(
            Row(
                "pgd",
                "advguard, torch.compile",
                10,
                median_seconds(lambda: attack(x, y), repeats),
                floor,
                x.shape[0],
            )
        )
    return rows


def allocator_probe(batch_size: int) -> None:
    """Child process: print the floor and PGD-10 time under this process's allocator."""
    configure_threads()
    model = frozen(build_model(ModelSpec(class_names=["a", "b", "c", "d"])))
    x, y = torch.rand(batch_size, 1, 128, 128), torch.randint(0, 4, (batch_size,))
    pgd = create_attack("pgd", model, eps=EPS, alpha=ALPHA, steps=10)
    floor = median_seconds(lambda: floor_step(model, x, y), 5)
    attack = median_seconds(lambda: pgd(x, y), 2)
    print(json.dumps({"floor": floor, "pgd": attack}))


def allocator_table(batch_size: int) -> None:
    settings = {
        "glibc malloc (default)": {},
        "glibc, tuned (no trimming, no mmap for big blocks)": {
            "MALLOC_TRIM_THRESHOLD_": str(2**40),
            "MALLOC_MMAP_THRESHOLD_": str(2**30),
            "MALLOC_TOP_PAD_": str(2**28),
        },
    }
    library = find_jemalloc()
    if library:
        settings["jemalloc"] = {"LD_PRELOAD": library, "MALLOC_CONF": JEMALLOC_CONF}
    results = {}
    for name, extra in settings.items():
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}
        env.update(extra, ADVGUARD_ALLOCATOR_SET="1")
        output = subprocess.run(
            [sys.executable, __file__, "--allocator-probe", "--batch-size", str(batch_size)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
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
    parser.add_argument("--allocator-probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allocator_probe:
        allocator_probe(args.batch_size)
        return
    reexec_with_jemalloc([sys.executable, __file__, *sys.argv[1:]])
    threads = configure_threads()
    print(
        f"torch {torch.__version__}, {threads} threads, "
        f"allocator: {'jemalloc' if 'jemalloc' in os.environ.get('LD_PRELOAD', '') else 'glibc'}"
    )
    model, x, y = bench_model(args.batch_size)
    rows = attack_rows(model, x, y, args.repeats, args.quick)
    print_table(
        [
            "attack",
            "implementation",
            "steps",
            "s/batch",
            "img/s",
            "ratio to floor",
            "speed-up vs torchattacks",
        ],
        [row.cells() for row in rows],
    )
    allocator_table(args.batch_size)


if __name__ == "__main__":
    main()
