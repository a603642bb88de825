"""The ``advguard`` command line: one sub-command per job, plus ``demo``."""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import torch
from tqdm.auto import tqdm

from advguard import __version__
from advguard.attacks import (
    ATTACKS,
    AttackError,
    attack_defaults,
    attack_summary,
    create_budget_attack,
)
from advguard.config import get_settings
from advguard.data import DatasetImportError, ImageDataset, SkippedFile, load_dataset
from advguard.defenses import (
    PREPROCESSORS,
    AdversarialTrainConfig,
    CheckpointError,
    adversarial_fit,
)
from advguard.detection import (
    AdversarialSet,
    AdversarialSetError,
    BuildConfig,
    Detector,
    DetectorConfig,
    DetectorLoadError,
    build_adversarial_set,
    default_attack_specs,
    export_zip,
    load_adversarial_set,
    train_detector,
)
from advguard.evaluation import (
    DEMO_ATTACKS,
    DEMO_EPSILONS,
    ROBUSTNESS_ATTACKS,
    ROBUSTNESS_EPSILONS,
    DefenseSetting,
    ModelComparison,
    ProtectedAccuracy,
    RobustnessResult,
    compare_models,
    evaluate_adaptive,
    evaluate_classifier,
    evaluate_robustness,
    format_eps,
    format_protected_table,
    format_table,
    json_ready,
    random_targets,
    run_attack,
    save_adversarial_set,
    training_summary,
    write_adaptive_report,
    write_robustness_report,
)
from advguard.evaluation.adaptive import DEFAULT_STEPS as ADAPTIVE_STEPS
from advguard.evaluation.detection_report import (
    UNSEEN_ATTACKS,
    build_detection_report,
    check_unseen_attacks,
    robustness_from_set,
    write_detection_report,
)
from advguard.evaluation.robustness import check_robustness_request, defense_settings
from advguard.guard import Guard
from advguard.models import (
    HOLDOUT_FRACTION,
    ModelLoadError,
    ModelSpec,
    TrainConfig,
    export_torchscript,
    fit_classifier,
    load_classifier,
    new_model,
    read_holdout_files,
    save_model,
)
from advguard.runtime import configure_threads, reexec_with_jemalloc, tune_glibc_malloc
from advguard.worker import QUEUES


class CommandError(Exception):
    """A user mistake reported as one line, without a traceback."""


def parse_number(text: str) -> float:
    """``0.03``, ``8/255`` or ``1e-3`` as a float."""
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 8/255 or 0.03)") from error


def parse_numbers(text: str) -> list[float]:
    """``2/255,4/255,0.03`` as a list of floats."""
    return [parse_number(item) for item in parse_list(text)]


def parse_param(text: str) -> tuple[str, object]:
    """``key=value`` with the value read as bool, int, number or text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not key=value")
    key, raw = text.split("=", 1)
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    try:
        return key, int(raw)
    except ValueError:
        pass
    try:
        return key, parse_number(raw)
    except argparse.ArgumentTypeError:
        return key, raw


def train_and_report(
    args: argparse.Namespace, out: Path
) -> tuple[torch.nn.Module, ModelSpec, dict[str, ImageDataset]]:
    """Load data, train, save the model and print test metrics; shared by train and demo."""
    folder = load_dataset(args.data, image_size=args.image_size, seed=args.seed)
    report_skipped(folder.skipped)
    train, test = folder.splits["train"], folder.splits["test"]
    print(
        f"data: {args.data}: train {len(train)} ({HOLDOUT_FRACTION:.0%} held out for "
        f"validation and the detector), test {len(test)}; classes {', '.join(folder.class_names)}"
    )
    config = TrainConfig(
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        time_limit_s=args.time_limit,
        ema_decay=args.ema_decay,
    )
    model, spec, history = fit_classifier(train, config)
    metrics = evaluate_classifier(model, test)
    save_model(model, spec, out / "model", history.holdout_files)
    summary = training_summary(metrics, history)
    (out / "model" / "metrics.json").write_text(json.dumps(summary, indent=2))
    kept = "moving average kept" if history.averaged else f"best {history.best_epoch + 1}"
    print(
        f"trained in {history.seconds:.0f} s ({len(history.epochs)} epochs, {kept}); "
        f"test accuracy {metrics.accuracy:.4f} on {len(test)} images"
    )
    print(metrics.format_confusion())
    print(f"model saved to {out / 'model'}")
    return model, spec, folder.splits


def report_skipped(skipped: Sequence[SkippedFile]) -> None:
    """Name each file an import left out, so a bad file is visible but not fatal."""
    for item in skipped[:20]:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"… and {len(skipped) - 20} more skipped files", file=sys.stderr)


def command_train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    model, spec, _ = train_and_report(args, out)
    if args.torchscript:
        path = export_torchscript(model, spec, out / "model.pt")
        print(f"TorchScript archive: {path}")


def command_attack(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    if args.eps is not None and ATTACKS[args.attack].norm != "linf":
        raise CommandError(
            f"{args.attack} is an L2 attack: it finds its own perturbation size; leave out --eps"
        )
    # Check the attack's parameters before the (slower) dataset import.
    attack = create_budget_attack(
        args.attack,
        model,
        args.eps,
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


def parse_list(text: str) -> list[str]:
    """``a,b,c`` as a list of non-empty items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def load_splits(data: str, model_spec: ModelSpec | None, seed: int) -> dict[str, ImageDataset]:
    """A dataset's train and test splits, checked against the model's classes."""
    folder = load_dataset(data, image_size=model_spec.image_size if model_spec else None, seed=seed)
    report_skipped(folder.skipped)
    if model_spec is not None and model_spec.class_names != folder.class_names:
        raise CommandError(
            f"the model's classes {model_spec.class_names} differ from the dataset's "
            f"{folder.class_names}"
        )
    return folder.splits


def load_split(data: str, model_spec: ModelSpec | None, seed: int, split: str) -> ImageDataset:
    """One split of a dataset, checked against the model's classes."""
    splits = load_splits(data, model_spec, seed)
    if split not in splits:
        raise CommandError(f"split {split!r} not found; have {', '.join(splits)}")
    return splits[split]


def build_config(args: argparse.Namespace, holdout_files: list[str] | None) -> BuildConfig:
    """The builder's configuration; the detector learns on ``holdout_files`` when known."""
    try:
        specs = default_attack_specs(args.attacks, args.eps)
        return BuildConfig(
            specs=specs, fraction=args.fraction, seed=args.seed, holdout_files=holdout_files
        )
    except ValueError as error:
        raise CommandError(str(error)) from error


def make_set(
    model: torch.nn.Module,
    splits: dict[str, ImageDataset],
    out: Path,
    args: argparse.Namespace,
    holdout_files: list[str] | None,
) -> AdversarialSet:
    """Build the adversarial set into ``out`` and say what it holds (shared with demo)."""
    config = build_config(args, holdout_files)
    started = time.perf_counter()
    try:
        adversarial = build_adversarial_set(model, splits, out, config)
    except ValueError as error:  # held-out images missing from this dataset
        raise CommandError(str(error)) from error
    print(
        f"adversarial set: {len(adversarial)} images ({len(config.specs)} attack settings on "
        f"{config.fraction:.0%} of each split's images, plus clean images and controls) "
        f"in {time.perf_counter() - started:.0f} s → {out}; the detector learns on "
        f"{config.detector_images()}"
    )
    rows = robustness_from_set(adversarial)
    table = format_table(rows)
    print(table)
    (out / "robustness.json").write_text(
        json.dumps(json_ready([r.to_dict() for r in rows]), indent=2)
    )
    (out / "robustness.md").write_text("# Robustness (test split)\n\n" + table + "\n")
    return adversarial


def command_build_set(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    holdout_files = read_holdout_files(args.model)
    build_config(args, holdout_files)  # refuse bad attack names or budgets before loading data
    out = Path(args.out)
    make_set(model, load_splits(args.data, spec, args.seed), out, args, holdout_files)
    if args.zip:
        print(f"zip: {export_zip(out, out.with_suffix('.zip'))}")


def fit_guard(
    model: torch.nn.Module, spec: ModelSpec, adversarial: AdversarialSet, args: argparse.Namespace
) -> tuple[Guard, torch.Tensor]:
    """Train the detector, wrap it with the classifier and save the guard to ``args.guard``."""
    config = DetectorConfig(target_false_rejection=args.target_frr, seed=args.seed)
    started = time.perf_counter()
    detector, features = train_detector(model, adversarial, config)
    guard = Guard(model, spec, detector)
    guard.save(args.guard)
    print(
        f"detector trained in {time.perf_counter() - started:.0f} s; threshold "
        f"{detector.threshold:.4f} for ≤ {args.target_frr:.1%} clean rejections; "
        f"guard saved to {args.guard}"
    )
    return guard, features


def command_train_detector(args: argparse.Namespace) -> None:
    model, spec = load_classifier(args.model)
    if spec is None:
        raise CommandError(f"{args.model} has no model description (class names, input size)")
    fit_guard(model, spec, load_adversarial_set(args.set), args)


def report(
    guard: Guard,
    adversarial: AdversarialSet,
    out: Path,
    args: argparse.Namespace,
    features: torch.Tensor | None = None,
) -> None:
    """Measure the guard on the set's test split and write the report (shared with demo)."""
    trained_on = guard.detector.attack_names
    unseen = (
        [name for name in UNSEEN_ATTACKS if name not in trained_on]
        if args.unseen_attacks is None
        else args.unseen_attacks
    )
    try:
        check_unseen_attacks(unseen, trained_on)
    except ValueError as error:
        raise CommandError(str(error)) from error
    result, view = build_detection_report(
        guard.detector,
        adversarial,
        features=features,
        baselines=not args.skip_baselines,
        leave_one_out=not args.skip_leave_one_out,
        unseen_attacks=unseen,
    )
    write_detection_report(result, view, adversarial, out)
    rows = [
        f"{r.attack:5s} {r.eps:6s} AUROC {r.auroc:.3f}  TPR {r.tpr:.3f}  "
        f"named {r.named_successful:.3f}  "
        + "  ".join(f"{name} {value:.3f}" for name, value in r.baselines.items())
        for r in result.rows
    ]
    print("\n".join(rows))
    for row in result.unseen:
        print(
            f"unseen {row.attack:8s} {row.eps:6s} AUROC {row.auroc:.3f}  "
            f"(successful {row.auroc_successful:.3f}, {row.successful}/{row.images})"
        )
    print(
        f"clean false rejections {result.clean_false_rejection:.3f}; attack named "
        f"{result.naming_accuracy:.3f}, family {result.family_accuracy:.3f}"
    )
    for left in result.leave_one_out:
        print(
            f"left out {left.attack:8s} AUROC {left.auroc:.3f}  (successful "
            f"{left.auroc_successful:.3f}, detected {left.tpr_successful:.3f})"
        )
    print(f"report: {out / 'report.md'}")


def command_evaluate(args: argparse.Namespace) -> None:
    guard = Guard.load(args.guard)
    report(guard, load_adversarial_set(args.set), Path(args.out), args)


def command_demo(args: argparse.Namespace) -> None:
    out = Path(args.out)
    started = time.perf_counter()
    model, spec, splits = train_and_report(args, out)
    holdout_files = read_holdout_files(out / "model")
    adversarial = make_set(model, splits, out / "adversarial-set", args, holdout_files)
    args.guard = out / "guard"
    guard, features = fit_guard(model, spec, adversarial, args)
    report(guard, adversarial, out / "report", args, features)
    sample = splits["test"].sample(args.robustness_images, args.seed)
    measure_robustness(
        model, sample, ROBUSTNESS_ATTACKS, ROBUSTNESS_EPSILONS, [DefenseSetting()],
        out / "report" / "robustness",
    )  # fmt: skip
    # Every preprocessing defense against PGD, through its true gradient and with BPDA.
    measure_robustness(
        model, sample, ["pgd"], ROBUSTNESS_EPSILONS, defense_settings(list(PREPROCESSORS)),
        out / "report" / "defenses",
    )  # fmt: skip
    if args.skip_slow:
        print("adversarial training and the adaptive attack skipped (--skip-slow)")
    else:
        robust = copy.deepcopy(model)
        config = AdversarialTrainConfig(epochs=args.adversarial_epochs, seed=args.seed)
        adversarially_train(robust, spec, splits["train"], config, out / "adversarial-training")
        compared = {"standard": model, "PGD-AT": robust}
        write_comparison(compare_models(compared, sample), out / "report" / "adversarial-training")
        measure_adaptive(
            {"standard": model, "adversarially trained": robust},
            sample.sample(args.adaptive_images, args.seed).quantised(),
            guard.detector,
            DEMO_EPSILONS,
            ADAPTIVE_STEPS,
            out / "report" / "adaptive",
        )
    link_reports(out / "report")
    print(f"demo took {time.perf_counter() - started:.0f} s")


DEMO_REPORTS = {
    "robustness/robustness.md": "Accuracy under each attack over ε",
    "defenses/robustness.md": "Preprocessing defenses against PGD, plain and with BPDA",
    "adversarial-training/comparison.md": "Standard against adversarially trained (PGD-AT)",
    "adaptive/adaptive.md": "The guard under an attack that knows its detector",
}


def link_reports(report_dir: Path) -> None:
    """End the detection report with links to the demo's other reports that were written."""
    links = [
        f"- [{title}]({path})"
        for path, title in DEMO_REPORTS.items()
        if (report_dir / path).exists()
    ]
    with (report_dir / "report.md").open("a") as report_file:
        report_file.write("\n## Robustness and defenses\n\n" + "\n".join(links) + "\n")


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


def command_serve(args: argparse.Namespace) -> None:
    """Run the API (and the built web app) with uvicorn."""
    import uvicorn

    from advguard.api import create_app

    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info")


def command_worker(args: argparse.Namespace) -> None:
    """Run a Celery worker for the given queues (replaces this process)."""
    from advguard.service import worker_command

    command = worker_command(tuple(args.queues), args.concurrency, args.hostname)
    os.execv(command[0], command)


def command_up(args: argparse.Namespace) -> None:
    """Redis (started here if none answers), one worker and the API, on one machine."""
    from advguard.service import local_redis_port, redis_answers, start_redis

    settings = get_settings()
    children: list[subprocess.Popen[bytes]] = []
    # uvicorn re-raises the SIGTERM it caught once it has shut down; make that an exit that
    # runs the clean-up below instead of killing this process with the children still up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if not redis_answers(settings.broker_url):
            port = local_redis_port(settings.broker_url)
            if port is None:
                raise CommandError(f"the broker {settings.broker_url} does not answer")
            children.append(start_redis(port, settings.data_dir / "redis"))
            print(f"redis: started on 127.0.0.1:{port} (data in {settings.data_dir / 'redis'})")
        else:
            print(f"redis: using {settings.broker_url}")
        # Through the CLI so the worker gets jemalloc like every other heavy command.
        children.append(subprocess.Popen([sys.executable, "-m", "advguard.cli", "worker"]))
        print(f"worker: started (queues {', '.join(QUEUES)})")
        print(f"api: http://{args.host}:{args.port}/  (API docs at /docs)")
        command_serve(args)
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            child.wait(timeout=30)


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="advguard", description="Attack, measure, defend and guard image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"advguard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_training_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data",
            default="bundled",
            help="bundled, brain-mri-4class, or a folder/zip path (default: bundled)",
        )
        sub.add_argument("--image-size", type=int, default=settings.image_size)
        sub.add_argument("--epochs", type=int, default=TrainConfig.epochs)
        sub.add_argument(
            "--patience", type=int, default=TrainConfig.patience, help="early-stopping patience"
        )
        sub.add_argument(
            "--time-limit", type=float, default=None, help="stop training after S seconds"
        )
        sub.add_argument(
            "--ema-decay",
            type=float,
            default=TrainConfig.ema_decay,
            help="decay of the moving average of the weights that is kept (default "
            f"{TrainConfig.ema_decay:g}; 0 keeps the best validation epoch instead)",
        )
        sub.add_argument("--seed", type=int, default=0)

    def add_robustness_options(sub: argparse.ArgumentParser, limit: int | None = None) -> None:
        sub.add_argument(
            "--attacks",
            type=parse_list,
            default=list(ROBUSTNESS_ATTACKS),
            help=f"comma-separated attacks (default: {','.join(ROBUSTNESS_ATTACKS)})",
        )
        sub.add_argument(
            "--eps",
            type=parse_numbers,
            default=list(ROBUSTNESS_EPSILONS),
            help="comma-separated L∞ budgets (default: 0,1/255,2/255,4/255,8/255,16/255)",
        )
        sub.add_argument(
            "--defenses",
            type=parse_list,
            default=[],
            help="preprocessing defenses to compare, each attacked plainly and with BPDA: "
            "bit_depth,median,jpeg,gaussian_blur (default: none)",
        )
        sub.add_argument(
            "--limit",
            type=int,
            default=limit,
            help="evaluate a random N images of the split"
            + (f" (default: {limit})" if limit else " (default: all)"),
        )
        sub.add_argument("--batch-size", type=int, default=128)

    train = commands.add_parser("train", help="train the built-in classifier on a dataset")
    add_training_options(train)
    train.add_argument("--out", default="advguard-out/train", help="output folder")
    train.add_argument("--torchscript", action="store_true", help="also export model.pt")
    train.set_defaults(handler=command_train)

    attack = commands.add_parser("attack", help="attack a dataset split; write PNGs + manifest")
    attack.add_argument("--model", required=True, help="model folder or TorchScript file")
    attack.add_argument("--data", default="bundled")
    attack.add_argument("--split", default="test")
    attack.add_argument("--attack", required=True, choices=sorted(ATTACKS))
    attack.add_argument("--eps", type=parse_number, default=None, help="budget, e.g. 8/255")
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

    listing = commands.add_parser("attacks", help="list the attacks and their defaults")
    listing.set_defaults(handler=command_attacks)

    def add_set_options(sub: argparse.ArgumentParser, fraction: float) -> None:
        sub.add_argument(
            "--attacks",
            type=parse_list,
            default=list(DEMO_ATTACKS),
            help=f"comma-separated attacks (default: {','.join(DEMO_ATTACKS)})",
        )
        sub.add_argument(
            "--eps",
            type=parse_numbers,
            default=list(DEMO_EPSILONS),
            help="comma-separated L∞ budgets (default: 2/255,4/255,8/255)",
        )
        sub.add_argument(
            "--fraction",
            type=float,
            default=fraction,
            help=f"share of each split's images attacked by each setting (default: {fraction})",
        )

    def add_report_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--skip-baselines", action="store_true", help="no baseline detectors")
        sub.add_argument(
            "--skip-leave-one-out", action="store_true", help="no leave-one-attack-out runs"
        )
        sub.add_argument(
            "--unseen-attacks",
            type=parse_list,
            default=None,
            help="attacks the detector never trained on, to report it on (default: those of "
            f"{','.join(UNSEEN_ATTACKS)} it was not trained on; '' for none)",
        )

    def add_guard_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target-frr",
            type=float,
            default=DetectorConfig.target_false_rejection,
            help="clean false-rejection rate the threshold is chosen for (default: 0.02)",
        )

    build = commands.add_parser(
        "build-set", help="attack a dataset with many attacks; write the adversarial set"
    )
    build.add_argument("--model", required=True, help="model folder or TorchScript file")
    build.add_argument("--data", default="bundled")
    build.add_argument("--out", required=True, help="output folder")
    build.add_argument("--zip", action="store_true", help="also pack the set into OUT.zip")
    build.add_argument("--seed", type=int, default=0)
    add_set_options(build, fraction=1.0)
    build.set_defaults(handler=command_build_set)

    detector = commands.add_parser(
        "train-detector", help="train a detector on an adversarial set; save the guard"
    )
    detector.add_argument("--model", required=True, help="the classifier the set was made on")
    detector.add_argument("--set", required=True, help="adversarial set folder (build-set)")
    detector.add_argument("--guard", required=True, help="output folder for the guard")
    detector.add_argument("--seed", type=int, default=0)
    add_guard_options(detector)
    detector.set_defaults(handler=command_train_detector)

    evaluate = commands.add_parser(
        "evaluate", help="report a guard's detection on an adversarial set's test split"
    )
    evaluate.add_argument("--guard", required=True, help="guard folder (train-detector)")
    evaluate.add_argument("--set", required=True, help="adversarial set folder (build-set)")
    evaluate.add_argument("--out", required=True, help="report folder")
    add_report_options(evaluate)
    evaluate.set_defaults(handler=command_evaluate)

    demo = commands.add_parser(
        "demo", help="the whole pipeline: classifier, adversarial set, detector, guard, report"
    )
    add_training_options(demo)
    demo.add_argument("--out", default="advguard-out/demo", help="output folder")
    add_set_options(demo, fraction=0.3)
    add_guard_options(demo)
    add_report_options(demo)
    demo.add_argument(
        "--robustness-images",
        type=int,
        default=100,
        help="test images for the robustness curves and defense table (default: 100)",
    )
    demo.add_argument(
        "--skip-slow",
        action="store_true",
        help="skip adversarial training and the adaptive attack (the slow parts)",
    )
    demo.add_argument(
        "--adversarial-epochs",
        type=int,
        default=3,
        help="PGD-AT fine-tuning epochs of the standard model (default: 3)",
    )
    demo.add_argument(
        "--adaptive-images",
        type=int,
        default=50,
        help="test images attacked adaptively, per setting and budget (default: 50)",
    )
    demo.set_defaults(handler=command_demo)

    def add_server_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--host", default="127.0.0.1", help="address to listen on")
        sub.add_argument("--port", type=int, default=8000)

    serve = commands.add_parser("serve", help="run the HTTP API (needs Redis and a worker)")
    add_server_options(serve)
    serve.set_defaults(handler=command_serve)

    worker = commands.add_parser("worker", help="run a Celery worker for the job queues")
    worker.add_argument(
        "-Q", "--queues", type=parse_list, default=list(QUEUES), help="comma-separated queues"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    worker.add_argument("--hostname", default=None, help="worker name (default: celery@host)")
    worker.set_defaults(handler=command_worker)

    up = commands.add_parser(
        "up", help="the whole service on this machine: Redis, a worker and the API"
    )
    add_server_options(up)
    up.set_defaults(handler=command_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advguard`` console script."""
    if argv is None:
        reexec_with_jemalloc()
    tune_glibc_malloc()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_threads(get_settings().num_threads)
    try:
        args.handler(args)
    except (
        CommandError,
        AttackError,
        DatasetImportError,
        ModelLoadError,
        AdversarialSetError,
        DetectorLoadError,
        CheckpointError,
        FileNotFoundError,
        PermissionError,
    ) as error:
        if args.debug:
            traceback.print_exc()
        print(f"advguard {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("advguard: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``advguard attacks | head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(
            f"advguard {args.command}: unexpected {type(error).__name__}: {error} "
            "(run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
