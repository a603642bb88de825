"""The parser and the dispatcher of the ``advguard`` command line; each command group's
module (``models``, ``attacks``, ``robustness``, ``detection``, ``demo``, ``service``)
adds its sub-commands."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from advguard import __version__
from advguard.attacks import AttackError
from advguard.cli import attacks, demo, detection, models, report, robustness, service
from advguard.cli.common import CommandError
from advguard.config import get_settings
from advguard.data import DatasetImportError
from advguard.defenses import CheckpointError
from advguard.detection import AdversarialSetError, DetectorLoadError
from advguard.models import ModelLoadError
from advguard.runtime import configure_threads, tune_glibc_malloc


def build_parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="advguard", description="Attack, measure, defend and guard image classifiers."
    )
    parser.add_argument("--version", action="version", version=f"advguard {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # In this order in ``advguard --help``.
    models.add_train(commands, settings)
    attacks.add_attack(commands)
    robustness.add_robustness(commands)
    robustness.add_adaptive(commands)
    robustness.add_adversarial_train(commands)
    attacks.add_attacks(commands)
    detection.add_build_set(commands)
    detection.add_train_detector(commands)
    detection.add_evaluate(commands)
    detection.add_export_guard(commands)
    report.add_report(commands)
    demo.add_demo(commands, settings)
    service.add_serve(commands)
    service.add_worker(commands)
    service.add_up(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command (see :func:`advguard.cli.main`)."""
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
