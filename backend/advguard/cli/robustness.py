"""``advguard robustness``, ``adaptive`` and ``adversarial-train``: accuracy under attack,
behind a detector, and after adversarial training."""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from advguard.cli.common import (
    CommandError,
    Subcommands,
    add_robustness_options,
    load_split,
    load_splits,
    parse_number,
    parse_numbers,
)
from advguard.data import ImageDataset
from advguard.defenses import (
    AdversarialTrainConfig,
    adversarial_fit,
)
from advguard.detection import Detector
from advguard.evaluation import (
    DEMO_EPSILONS,
    DefenseSetting,
    ModelComparison,
    ProtectedAccuracy,
    RobustnessResult,
    compare_models,
    evaluate_adaptive,
    evaluate_robustness,
    format_eps,
    format_protected_table,
    json_ready,
    write_adaptive_report,
    write_robustness_report,
)
from advguard.evaluation.adaptive import DEFAULT_STEPS as ADAPTIVE_STEPS
from advguard.evaluation.robustness import check_robustness_request, defense_settings
from advguard.guard import Guard
from advguard.models import (
    ModelSpec,
    load_classifier,
    new_model,
    save_model,
)


def robustness_settings(args: argparse.Namespace) -> list[DefenseSetting]:
    """The defense settings asked for, with the attacks and budgets checked (before any
    data is loaded)."""
    try:
        check_robustness_request(args.attacks, args.eps)
        return defense_settings(args.defenses)
    except ValueError as error:
        raise CommandError(str(error)) from error


def measure_robustness(
    model: torch.nn.Module,
    dataset: ImageDataset,
    attacks: Sequence[str],
    epsilons: Sequence[float],
    settings: Sequence[DefenseSetting],
    out: Path,
    batch_size: int = 128,
) -> RobustnessResult:
    """Accuracy over the ε grid with one progress bar; write and print the report."""
    with tqdm(total=1, desc="robustness", unit="img") as bar:

        def advance(stage: str, done: int, total: int) -> None:
            bar.total = total
            bar.set_postfix_str(stage, refresh=False)
            bar.update(done - bar.n)

        result = evaluate_robustness(
            model,
            dataset,
            attacks,
            epsilons,
            settings,
            batch_size=batch_size,
            progress=advance,
            show_progress=False,
        )
    write_robustness_report(result, out)
    print(result.markdown())
    print(f"robustness measured on {len(dataset)} images in {result.seconds:.0f} s → {out}")
    return result


def command_robustness(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    settings = robustness_settings(args)
    dataset = load_split(args.data, spec, args.seed, args.split).sample(args.limit, args.seed)
    measure_robustness(
        model, dataset, args.attacks, args.eps, settings, Path(args.out), args.batch_size
    )


def measure_adaptive(
    classifiers: dict[str, torch.nn.Module],
    dataset: ImageDataset,
    detector: Detector | None,
    epsilons: Sequence[float],
    steps: int,
    out: Path,
) -> list[ProtectedAccuracy]:
    """The adaptive-attack table with one progress bar; write and print the report."""
    with tqdm(total=1, desc="adaptive attack", unit="img") as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        rows = evaluate_adaptive(
            classifiers, dataset, detector, epsilons=epsilons, steps=steps, progress=advance,
            show_progress=False,
        )  # fmt: skip
    write_adaptive_report(rows, out)
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
    dataset = split.sample(args.limit, args.seed).quantised()
    measure_adaptive(classifiers, dataset, guard.detector, args.eps, args.steps, Path(args.out))


def adversarially_train(
    model: torch.nn.Module,
    spec: ModelSpec,
    train: ImageDataset,
    config: AdversarialTrainConfig,
    out: Path,
    *,
    resume: bool = True,
) -> None:
    """Train ``model`` adversarially with checkpoints in ``out/checkpoints`` and save it
    to ``out/model`` (shared by adversarial-train and demo)."""
    history = adversarial_fit(
        model, train, config, checkpoint_dir=out / "checkpoints", resume=resume
    )
    save_model(model, spec, out / "model", history.holdout_files)
    best = history.epochs[history.best_epoch]
    resumed = (
        f", {history.resumed_epochs} resumed from the checkpoint" if history.resumed_epochs else ""
    )
    print(
        f"{config.method} adversarial training: {len(history.epochs)} epochs{resumed} in "
        f"{history.seconds:.0f} s; kept epoch {history.best_epoch + 1} (validation accuracy "
        f"{best.val_accuracy:.3f}, under PGD-{config.val_steps} at ε={format_eps(config.eps)} "
        f"{best.val_robust_accuracy:.3f}); model saved to {out / 'model'}"
    )


def write_comparison(comparison: ModelComparison, out: Path) -> None:
    """Print the comparison table and save it as JSON and Markdown in ``out``."""
    table = comparison.markdown()
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(json_ready(comparison.to_dict()), indent=2))
    (out / "comparison.md").write_text(
        f"# Clean and robust accuracy\n\nWorst case per image under "
        f"{', '.join(comparison.attacks)} on {comparison.images} test images "
        f"({comparison.seconds:.0f} s).\n\n{table}\n"
    )


def command_adversarial_train(args: argparse.Namespace) -> None:
    try:
        config = AdversarialTrainConfig(
            method=args.method,
            eps=args.eps,
            steps=args.steps,
            beta=args.beta,
            epochs=args.epochs,
            patience=args.patience,
            time_limit_s=args.time_limit,
            seed=args.seed,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
    start: torch.nn.Module | None = None
    spec: ModelSpec | None = None
    if args.model is not None:
        model, spec = load_classifier(args.model)
        if spec is None or isinstance(model, torch.jit.ScriptModule):
            raise CommandError(
                f"{args.model} is a TorchScript archive; adversarial training needs a "
                "built-in-architecture model folder (model.safetensors + model.json)"
            )
        start = copy.deepcopy(model)
    splits = load_splits(args.data, spec, args.seed)
    if spec is None:
        model, spec = new_model(splits["train"], args.seed)
    out = Path(args.out)
    adversarially_train(model, spec, splits["train"], config, out, resume=not args.restart)
    label = "PGD-AT" if args.method == "pgd" else "TRADES"
    compared = {label: model} if start is None else {"start": start, label: model}
    comparison = compare_models(
        compared,
        splits["test"].sample(args.limit, args.seed),
        sorted({0.0, *DEMO_EPSILONS, args.eps}),
    )
    write_comparison(comparison, out)


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
        "--eps", type=parse_numbers, default=list(DEMO_EPSILONS), help="budgets (2/255,4/255,…)"
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
        "--eps", type=parse_number, default=AdversarialTrainConfig.eps, help="budget (8/255)"
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
