"""``advguard attack`` and ``advguard attacks``: one attack over a split, and the
registry."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from advguard.attacks import (
    ATTACKS,
    attack_defaults,
    attack_summary,
    create_budget_attack,
    parse_budget,
)
from advguard.cli.common import (
    CommandError,
    Subcommands,
    load_split,
    parse_l2_budget,
    parse_param,
)
from advguard.evaluation import (
    format_eps,
    random_targets,
    run_attack,
    save_adversarial_set,
)
from advguard.models import load_classifier


def command_attack(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    kind = ATTACKS[args.attack]
    eps = None
    if args.eps is not None:
        if kind.minimal:
            raise CommandError(
                f"{args.attack} is a minimal-perturbation attack: it finds its own "
                "perturbation size; leave out --eps"
            )
        try:
            # An L2 radius is a plain number; an L∞ budget of 8 means 8/255.
            eps = parse_l2_budget(args.eps) if kind.norm == "l2" else parse_budget(args.eps)
        except (argparse.ArgumentTypeError, ValueError) as error:
            raise CommandError(f"--eps: {error}") from error
    # Check the attack's parameters before the (slower) dataset import.
    attack = create_budget_attack(
        args.attack,
        model,
        eps,
        kind.norm,
        targeted=args.targeted,
        seed=args.seed,
        **dict(args.param or []),
    )
    dataset = load_split(args.data, spec, args.seed, args.split)
    if args.limit:
        dataset = dataset.subset(torch.arange(min(args.limit, len(dataset))))
    targets = None
    if args.targeted:
        if args.target_class is None:
            targets = random_targets(dataset.labels, len(dataset.class_names), seed=args.seed)
        elif args.target_class in dataset.class_names:
            targets = torch.full_like(dataset.labels, dataset.class_names.index(args.target_class))
        else:
            raise CommandError(f"unknown class {args.target_class!r}; have {dataset.class_names}")
    outcome = run_attack(
        model, attack, dataset, targets=targets, batch_size=args.batch_size, quantize=True
    )
    save_adversarial_set(Path(args.out), attack.name, attack.params(), dataset, outcome)
    print(
        f"{attack!r}: success {outcome.success_rate:.3f} on {int(outcome.clean_correct.sum())} "
        f"correctly classified images; accuracy {outcome.clean_accuracy:.3f} → "
        f"{outcome.adversarial_accuracy:.3f}; {outcome.seconds:.1f} s"
    )
    print(f"wrote {len(dataset)} PNG files and manifest.csv to {args.out}")


def command_attacks(args: argparse.Namespace) -> None:
    for name, cls in ATTACKS.items():
        defaults = attack_defaults(cls)
        shown = ", ".join(
            f"{k}={format_eps(v) if k == 'eps' and isinstance(v, float) else v}"
            for k, v in defaults.items()
        )
        print(f"{name:8s} ({cls.norm}) {attack_summary(cls)}")
        print(f"         {shown}")


def add_attack(commands: Subcommands) -> None:
    """``attack``."""
    attack = commands.add_parser("attack", help="attack a dataset split; write PNGs + manifest")
    attack.add_argument("--model", required=True, help="model folder or TorchScript file")
    attack.add_argument("--data", default="bundled")
    attack.add_argument("--split", default="test")
    attack.add_argument("--attack", required=True, choices=sorted(ATTACKS))
    attack.add_argument(
        "--eps", default=None, help="budget: L∞ (8/255), or the radius of an L2 attack (0.5)"
    )
    attack.add_argument(
        "--param",
        type=parse_param,
        action="append",
        help="attack parameter key=value (repeatable), e.g. steps=20",
    )
    attack.add_argument("--targeted", action="store_true")
    attack.add_argument("--target-class", default=None, help="with --targeted; default: random")
    attack.add_argument("--limit", type=int, default=None, help="attack only the first N images")
    attack.add_argument("--batch-size", type=int, default=128)
    attack.add_argument("--seed", type=int, default=0)
    attack.add_argument("--out", required=True, help="output folder")
    attack.set_defaults(handler=command_attack)


def add_attacks(commands: Subcommands) -> None:
    """``attacks``."""
    listing = commands.add_parser("attacks", help="list the attacks and their defaults")
    listing.set_defaults(handler=command_attacks)
