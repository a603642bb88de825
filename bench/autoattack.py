"""AutoAttack robust accuracy on a real test split, advguard beside torchattacks 3.5.1.

For each model and budget (L∞ and L2): the share of the sampled test images that stay
correctly classified under advguard's ``autoattack`` (standard: 100 steps, as Croce and
Hein run it) and under torchattacks' ``AutoAttack(version="standard")`` (whose gradient
attacks take 10 steps), on the same images, with the seconds each took; with ``--matched``
also advguard's at torchattacks' settings and the speed-up there. torchattacks is imported from
.cache/bench-site (``make baselines``), never from the runtime environment.

Usage: python bench/autoattack.py --model STANDARD --model AT [--data brain-mri-4class]
       [--limit 100] [--linf 1,2,4,8] [--l2 0.25,0.5] [--matched] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from advguard.attacks import create_attack, format_eps
from advguard.cli.common import load_split
from advguard.models import load_classifier
from advguard.runtime import configure_threads, tune_glibc_malloc

BASELINE_SITE = Path(__file__).resolve().parents[1] / ".cache" / "bench-site"
REFERENCE_STEPS = 10
"""torchattacks' AutoAttack runs its APGD, APGD-T and FAB with their default 10 steps."""


@dataclass
class Row:
    model: str
    norm: str
    eps: float
    images: int
    clean: float
    advguard: float
    advguard_seconds: float
    matched: float | None
    matched_seconds: float | None
    torchattacks: float | None
    torchattacks_seconds: float | None

    def cells(self) -> list[str]:
        budget = f"L∞ {format_eps(self.eps)}" if self.norm == "linf" else f"L2 {self.eps:g}"
        reference = (
            "–"
            if self.torchattacks is None or self.torchattacks_seconds is None
            else f"{self.torchattacks:.1%} ({self.torchattacks_seconds:.0f} s)"
        )
        speed = (
            f"{self.torchattacks_seconds / self.matched_seconds:.2f}×"
            if self.torchattacks_seconds and self.matched_seconds
            else "–"
        )
        matched = (
            "–"
            if self.matched is None or self.matched_seconds is None
            else f"{self.matched:.1%} ({self.matched_seconds:.0f} s)"
        )
        return [
            self.model,
            budget,
            f"{self.clean:.1%}",
            f"{self.advguard:.1%} ({self.advguard_seconds:.0f} s)",
            matched,
            reference,
            speed,
        ]


HEADER = [
    "model",
    "budget",
    "clean",
    "advguard AutoAttack (100 steps)",
    "advguard, torchattacks' settings (10 steps)",
    "torchattacks 3.5.1 AutoAttack",
    "speed-up at matched settings",
]


def import_torchattacks() -> ModuleType | None:
    """torchattacks 3.5.1 from the bench site, or ``None`` when it is not installed."""
    if not (BASELINE_SITE / "torchattacks").is_dir():
        return None
    sys.path.insert(0, str(BASELINE_SITE))
    try:
        import torchattacks
    finally:
        sys.path.remove(str(BASELINE_SITE))
    return torchattacks


def robust_accuracy(model: nn.Module, x_adv: Tensor, y: Tensor) -> float:
    with torch.no_grad():
        return float((model(x_adv).argmax(1) == y).float().mean())


def timed(run: Callable[[], Tensor]) -> tuple[Tensor, float]:
    started = time.perf_counter()
    result = run()
    return result, time.perf_counter() - started


def measure(
    name: str,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    norm: str,
    eps: float,
    reference: ModuleType | None,
    matched_settings: bool,
) -> Row:
    """One model at one budget, on the same images: ours at the standard settings,
    torchattacks', and (``matched_settings``) ours at torchattacks' 10 steps."""
    attack = "autoattack" if norm == "linf" else "autoattack-l2"
    classes = int(model(x[:1]).shape[1])
    ours, ours_s = timed(lambda: create_attack(attack, model, eps=eps)(x, y))
    matched = matched_s = None
    if matched_settings:
        matched_attack = create_attack(attack, model, eps=eps, steps=REFERENCE_STEPS)
        adversarial, matched_s = timed(lambda: matched_attack(x, y))
        matched = robust_accuracy(model, adversarial, y)
    theirs = theirs_s = None
    if reference is not None:
        baseline = reference.AutoAttack(
            model, norm="Linf" if norm == "linf" else "L2", eps=eps, version="standard",
            n_classes=classes, seed=0,
        )  # fmt: skip
        adversarial, theirs_s = timed(lambda: baseline(x, y))
        theirs = robust_accuracy(model, adversarial, y)
    return Row(
        model=name, norm=norm, eps=eps, images=len(x), clean=robust_accuracy(model, x, y),
        advguard=robust_accuracy(model, ours, y), advguard_seconds=ours_s,
        matched=matched, matched_seconds=matched_s,
        torchattacks=theirs, torchattacks_seconds=theirs_s,
    )  # fmt: skip


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def parse_numbers(text: str) -> list[float]:
    return [float(item) for item in text.split(",") if item.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, help="model folder (repeat)")
    parser.add_argument("--name", action="append", default=None, help="its name in the table")
    parser.add_argument("--data", default="brain-mri-4class")
    parser.add_argument("--limit", type=int, default=100, help="test images (a seeded sample)")
    parser.add_argument("--linf", type=parse_numbers, default=[1, 2, 4, 8], help="in 1/255")
    parser.add_argument("--l2", type=parse_numbers, default=[0.25, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--matched", action="store_true", help="also ours at torchattacks' settings (10 steps)"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    tune_glibc_malloc()
    configure_threads()
    reference = import_torchattacks()
    if reference is None:
        print(f"torchattacks is not in {BASELINE_SITE} (make baselines): advguard only")
    names = args.name or [Path(path).resolve().name for path in args.model]
    budgets = [("linf", level / 255) for level in args.linf] + [("l2", r) for r in args.l2]
    rows: list[Row] = []
    for name, path in zip(names, args.model, strict=True):
        model, spec = load_classifier(path)
        model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        data = load_split(args.data, spec, args.seed, "test").sample(args.limit, args.seed)
        for norm, eps in budgets:
            rows.append(
                measure(name, model, data.images, data.labels, norm, eps, reference, args.matched)
            )
            print(markdown(rows[-1:]).splitlines()[-1], flush=True)
            if args.out:
                args.out.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    print(f"\n{args.limit} {args.data} test images (seed {args.seed}):\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
