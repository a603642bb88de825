"""``advguard robustness``, ``adaptive`` and ``adversarial-train``: accuracy under attack,
behind a detector, and after adversarial training."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from advguard.cli.common import (
    CommandError,
    Subcommands,
    add_robustness_options,
    job_params,
    load_split,
    load_splits,
    parse_budget_option,
    parse_budgets,
    progress_bar,
)
from advguard.data import ImageDataset
from advguard.defenses import AdversarialTrainConfig
from advguard.detection import Detector
from advguard.evaluation import (
    DEMO_EPSILONS,
    ROBUSTNESS_L2_EPSILONS,
    ProtectedAccuracy,
    RobustnessResult,
    format_eps,
    format_protected_table,
)
from advguard.evaluation.adaptive import DEFAULT_STEPS as ADAPTIVE_STEPS
from advguard.evaluation.robustness import check_robustness_request, defense_settings
from advguard.guard import Guard
from advguard.jobs import AdversarialTrainingParams
from advguard.jobs.steps import (
    AdversariallyTrained,
    measure_adaptive,
    measure_robustness,
    train_adversarially,
)
from advguard.models import ModelSpec, load_classifier, new_model


def check_robustness_options(args: argparse.Namespace) -> None:
    """Refuse unknown attacks or defenses and bad budgets before any data is loaded."""
    try:
        check_robustness_request(args.attacks, args.eps, args.l2_eps)
        defense_settings(args.defenses)
    except ValueError as error:
        raise CommandError(str(error)) from error


def robustness_report(
    model: torch.nn.Module,
    dataset: ImageDataset,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    defenses: Sequence[str],
    out: Path,
    *,
    l2_epsilons: Sequence[float] = ROBUSTNESS_L2_EPSILONS,
    batch_size: int = 128,
) -> RobustnessResult:
    """Run the robustness step into ``out`` with a progress bar and print its table."""
    with progress_bar("robustness", unit="img") as progress:
        result, _ = measure_robustness(
            model, dataset, attacks, epsilons, defenses, out, progress,
            l2_epsilons=l2_epsilons, batch_size=batch_size,
        )  # fmt: skip
    print(result.markdown())
    print(f"robustness measured on {len(dataset)} images in {result.seconds:.0f} s → {out}")
    return result


def command_robustness(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    check_robustness_options(args)
    dataset = load_split(args.data, spec, args.seed, args.split).sample(args.limit, args.seed)
    robustness_report(
        model, dataset, args.attacks, args.eps, args.defenses, Path(args.out),
        l2_epsilons=args.l2_eps, batch_size=args.batch_size,
    )  # fmt: skip


def adaptive_report(
    classifiers: dict[str, torch.nn.Module],
    dataset: ImageDataset,
    detector: Detector | None,
    epsilons: Sequence[float],
    steps: int,
    seed: int,
    out: Path,
) -> list[ProtectedAccuracy]:
    """Run the adaptive-attack step into ``out`` with a progress bar and print its table."""
    with progress_bar("adaptive attack", unit="img") as progress:
        rows, _ = measure_adaptive(
            classifiers, dataset, detector, epsilons, steps, seed, out, progress
        )
    print(format_protected_table(rows))
    print(f"adaptive attack report: {out / 'adaptive.md'}")
    return rows


def command_adaptive(args: argparse.Namespace) -> None:
    guard = Guard.load(args.guard)
    classifiers = {"standard": guard.classifier}
    for path in args.robust_model or []:
        model, spec = load_classifier(path)
        if spec is not None and spec.class_names != guard.spec.class_names:
            raise CommandError(
                f"{path}'s classes {spec.class_names} differ from the guard's "
                f"{guard.spec.class_names}"
            )
        # `adversarial-train --out DIR` saves to DIR/model: name the model after DIR.
        folder = Path(path).resolve()
        name = folder.parent.name if folder.name == "model" else folder.stem
        if name in classifiers:
            raise CommandError(f"two --robust-model paths are both named {name!r}")
        classifiers[name] = model
    split = load_split(args.data, guard.spec, args.seed, args.split)
    adaptive_report(
        classifiers,
        split.sample(args.limit, args.seed),
        guard.detector,
        args.eps,
        args.steps,
        args.seed,
        Path(args.out),
    )


def describe_adversarial_training(
    outcome: AdversariallyTrained, config: AdversarialTrainConfig
) -> str:
    """One line on how adversarial training went (epochs, the kept epoch's accuracies)."""
    history = outcome.history
    best = history.epochs[history.best_epoch]
    resumed = (
        f", {history.resumed_epochs} resumed from the checkpoint" if history.resumed_epochs else ""
    )
    return (
        f"{config.method} adversarial training: {len(history.epochs)} epochs{resumed} in "
        f"{history.seconds:.0f} s; kept epoch {history.best_epoch + 1} (validation accuracy "
        f"{best.val_accuracy:.3f}, under PGD-{config.val_steps} at ε={format_eps(config.eps)} "
        f"{best.val_robust_accuracy:.3f}); model saved to {outcome.folder}"
    )


def adversarially_train(
    model: torch.nn.Module,
    spec: ModelSpec,
    splits: dict[str, ImageDataset],
    config: AdversarialTrainConfig,
    out: Path,
    *,
    start_name: str | None,
    comparison_images: int | None,
    comparison_out: Path | None = None,
    resume: bool = True,
) -> AdversariallyTrained:
    """Run the adversarial-training step into ``out`` with a progress bar and print how it
    went and its comparison table (shared by adversarial-train and demo)."""
    with progress_bar(f"{config.method} adversarial training") as progress:
        trained = train_adversarially(
            model, spec, splits["train"], splits["test"], config, out, progress,
            start_name=start_name, comparison_images=comparison_images,
            comparison_out=comparison_out, resume=resume,
        )  # fmt: skip
    print(describe_adversarial_training(trained, config))
    print(trained.comparison.markdown())
    return trained


def command_adversarial_train(args: argparse.Namespace) -> None:
    params = job_params(
        AdversarialTrainingParams,
        method=args.method,
        eps=args.eps,
        steps=args.steps,
        beta=args.beta,
        epochs=args.epochs,
        patience=args.patience,
        time_limit_s=args.time_limit,
        seed=args.seed,
    )
    spec: ModelSpec | None = None
    if args.model is not None:
        model, spec = load_classifier(args.model)
        if spec is None or isinstance(model, torch.jit.ScriptModule):
            raise CommandError(
                f"{args.model} is a TorchScript archive; adversarial training needs a "
                "built-in-architecture model folder (model.safetensors + model.json)"
            )
    splits = load_splits(args.data, spec, args.seed)
    if spec is None:
        model, spec = new_model(splits["train"], args.seed)
    adversarially_train(
        model,
        spec,
        splits,
        params.train_config(),
        Path(args.out),
        start_name=None if args.model is None else "start",
        comparison_images=args.limit,
        resume=not args.restart,
    )


def add_robustness(commands: Subcommands) -> None:
    """``robustness``."""
    robustness = commands.add_parser(
        "robustness",
        help="accuracy under each attack over an ε grid, with and without preprocessing defenses",
    )
    robustness.add_argument("--model", required=True, help="model folder or TorchScript file")
    robustness.add_argument("--data", default="bundled")
    robustness.add_argument("--split", default="test")
    add_robustness_options(robustness)
    robustness.add_argument("--seed", type=int, default=0)
    robustness.add_argument("--out", required=True, help="report folder")
    robustness.set_defaults(handler=command_robustness)


def add_adaptive(commands: Subcommands) -> None:
    """``adaptive``."""
    adaptive = commands.add_parser(
        "adaptive",
        help="protected accuracy of a guard under an attack that knows its detector",
    )
    adaptive.add_argument("--guard", required=True, help="guard folder (train-detector)")
    adaptive.add_argument(
        "--robust-model",
        action="append",
        default=None,
        help="also an adversarially trained classifier behind the same detector (repeatable)",
    )
    adaptive.add_argument("--data", default="bundled")
    adaptive.add_argument("--split", default="test")
    adaptive.add_argument(
        "--eps", type=parse_budgets, default=list(DEMO_EPSILONS), help="budgets (2/255,4/255,…)"
    )
    adaptive.add_argument("--steps", type=int, default=ADAPTIVE_STEPS)
    adaptive.add_argument(
        "--limit", type=int, default=200, help="test images to attack (default: 200)"
    )
    adaptive.add_argument("--seed", type=int, default=0)
    adaptive.add_argument("--out", required=True, help="report folder")
    adaptive.set_defaults(handler=command_adaptive)


def add_adversarial_train(commands: Subcommands) -> None:
    """``adversarial-train``."""
    adversarial = commands.add_parser(
        "adversarial-train",
        help="PGD-AT or TRADES training (resumable); compare clean and robust accuracy",
    )
    adversarial.add_argument(
        "--model", default=None, help="start from this model folder (default: a new CNN)"
    )
    adversarial.add_argument("--data", default="bundled")
    adversarial.add_argument("--method", choices=["pgd", "trades"], default="pgd")
    adversarial.add_argument(
        "--eps", type=parse_budget_option, default=AdversarialTrainConfig.eps, help="budget (8/255)"
    )
    adversarial.add_argument(
        "--steps", type=int, default=AdversarialTrainConfig.steps, help="inner attack steps"
    )
    adversarial.add_argument(
        "--beta", type=float, default=AdversarialTrainConfig.beta, help="TRADES weight"
    )
    adversarial.add_argument("--epochs", type=int, default=10)
    adversarial.add_argument("--patience", type=int, default=AdversarialTrainConfig.patience)
    adversarial.add_argument(
        "--time-limit", type=float, default=None, help="stop after S seconds (resumable)"
    )
    adversarial.add_argument(
        "--restart", action="store_true", help="ignore a checkpoint in OUT and start over"
    )
    adversarial.add_argument(
        "--limit", type=int, default=200, help="test images for the comparison (default 200)"
    )
    adversarial.add_argument("--seed", type=int, default=0)
    adversarial.add_argument("--out", required=True, help="output folder (model, checkpoints)")
    adversarial.set_defaults(handler=command_adversarial_train)
