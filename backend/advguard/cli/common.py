"""What the command groups share: errors, argument parsing, datasets and common
options."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from tqdm.auto import tqdm

from advguard.attacks import parse_budget
from advguard.config import Settings
from advguard.data import ImageDataset, SkippedFile, load_dataset
from advguard.detection import DetectorConfig
from advguard.evaluation import (
    DEMO_ATTACKS,
    DEMO_EPSILONS,
    ROBUSTNESS_ATTACKS,
    ROBUSTNESS_EPSILONS,
    ROBUSTNESS_L2_EPSILONS,
)
from advguard.evaluation.detection_report import UNSEEN_ATTACKS
from advguard.evaluation.robustness import MAX_L2_EPS, ProgressCallback
from advguard.models import (
    ModelSpec,
    TrainConfig,
)

Subcommands = argparse._SubParsersAction  # type of ``parser.add_subparsers()``
ParamsT = TypeVar("ParamsT", bound=BaseModel)


class CommandError(Exception):
    """A user mistake reported as one line, without a traceback."""


def job_params(kind: type[ParamsT], **values: Any) -> ParamsT:
    """The job's own parameter model filled from command-line options, so the CLI accepts
    what the API accepts; a bad value is a :class:`CommandError` naming the parameter."""
    try:
        return kind(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors()
        )
        raise CommandError(problems) from error


@contextmanager
def progress_bar(description: str, unit: str = "it") -> Iterator[ProgressCallback]:
    """Run a pipeline step in the terminal: yield its ``progress(stage, done, total)``
    callback, drawn as one bar with the current stage beside it."""
    with tqdm(total=1, desc=description, unit=unit) as bar:

        def advance(stage: str, done: int, total: int) -> None:
            bar.total = max(total, 1)
            bar.set_postfix_str(stage, refresh=False)
            bar.update(done - bar.n)

        yield advance


def parse_number(text: str) -> float:
    """``0.03``, ``8/255`` or ``1e-3`` as a float."""
    try:
        return float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError) as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (try 8/255 or 0.03)") from error


def parse_budget_option(text: str) -> float:
    """An L∞ budget in the syntax every budget field takes: ``8/255``, ``0.031`` or ``8``
    (= 8/255)."""
    try:
        return parse_budget(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parse_l2_budget(text: str) -> float:
    """An L2 radius in pixel scale: ``0.5`` or ``1`` (never read as /255)."""
    radius = parse_number(text)
    if not 0 <= radius <= MAX_L2_EPS:
        raise argparse.ArgumentTypeError(
            f"an L2 budget must be between 0 and {MAX_L2_EPS:g} (pixel scale, e.g. 0.5), "
            f"got {text!r}"
        )
    return radius


def parse_l2_budgets(text: str) -> list[float]:
    """``0,0.25,0.5`` as a list of L2 radii."""
    return [parse_l2_budget(item) for item in parse_list(text)]


def parse_budgets(text: str) -> list[float]:
    """``2/255,4/255,0.03`` (or ``2,4,8``) as a list of budgets."""
    return [parse_budget_option(item) for item in parse_list(text)]


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


def parse_list(text: str) -> list[str]:
    """``a,b,c`` as a list of non-empty items."""
    return [item.strip() for item in text.split(",") if item.strip()]


def report_skipped(skipped: Sequence[SkippedFile]) -> None:
    """Name each file an import left out, so a bad file is visible but not fatal."""
    for item in skipped[:20]:
        print(f"skipped {item.path}: {item.reason}", file=sys.stderr)
    if len(skipped) > 20:
        print(f"… and {len(skipped) - 20} more skipped files", file=sys.stderr)


def load_splits(data: str, model_spec: ModelSpec | None, seed: int) -> dict[str, ImageDataset]:
    """A dataset's train and test splits, checked against the model's classes."""
    folder = load_dataset(
        data,
        image_size=model_spec.image_size if model_spec else None,
        channels=model_spec.in_channels if model_spec else 1,
        seed=seed,
    )
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


def add_training_options(sub: argparse.ArgumentParser, settings: Settings) -> None:
    """The classifier-training options shared by train and demo (one recipe)."""
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
    sub.add_argument("--time-limit", type=float, default=None, help="stop training after S seconds")
    sub.add_argument(
        "--ema-decay",
        type=float,
        default=TrainConfig.ema_decay,
        help="decay of the moving average of the weights that is kept (default "
        f"{TrainConfig.ema_decay:g}; 0 keeps the best validation epoch instead)",
    )
    sub.add_argument("--seed", type=int, default=0)


def add_robustness_options(
    sub: argparse.ArgumentParser,
    limit: int | None = None,
    *,
    attacks: Sequence[str] = ROBUSTNESS_ATTACKS,
    defenses: Sequence[str] = (),
) -> None:
    """Attacks, budgets, defenses and sample size of a robustness evaluation (with the
    given default attacks and defenses)."""
    sub.add_argument(
        "--attacks",
        type=parse_list,
        default=list(attacks),
        help=f"comma-separated attacks (default: {','.join(attacks)})",
    )
    sub.add_argument(
        "--eps",
        type=parse_budgets,
        default=list(ROBUSTNESS_EPSILONS),
        help="comma-separated L∞ budgets (default: 0,1/255,2/255,4/255,8/255,16/255)",
    )
    sub.add_argument(
        "--l2-eps",
        type=parse_l2_budgets,
        default=list(ROBUSTNESS_L2_EPSILONS),
        help="comma-separated L2 radii of the L2 attacks (default: 0,0.25,0.5,1)",
    )
    sub.add_argument(
        "--defenses",
        type=parse_list,
        default=list(defenses),
        help="preprocessing defenses to compare, each attacked plainly and with BPDA: "
        f"bit_depth,median,jpeg,gaussian_blur (default: {','.join(defenses) or 'none'})",
    )
    sub.add_argument(
        "--limit",
        type=int,
        default=limit,
        help="evaluate a random N images of the split"
        + (f" (default: {limit})" if limit else " (default: all)"),
    )
    sub.add_argument("--batch-size", type=int, default=128)


def add_set_options(sub: argparse.ArgumentParser, fraction: float) -> None:
    """The attacks, budgets and share of images of an adversarial set."""
    sub.add_argument(
        "--attacks",
        type=parse_list,
        default=list(DEMO_ATTACKS),
        help=f"comma-separated attacks (default: {','.join(DEMO_ATTACKS)})",
    )
    sub.add_argument(
        "--eps",
        type=parse_budgets,
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
    """What a detection report leaves out or adds."""
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
    """The detector's operating point."""
    sub.add_argument(
        "--target-frr",
        type=float,
        default=DetectorConfig.target_false_rejection,
        help="clean false-rejection rate the threshold is chosen for (default: 0.02)",
    )


def add_server_options(sub: argparse.ArgumentParser) -> None:
    """Where the API listens."""
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on")
    sub.add_argument("--port", type=int, default=8000)
