"""The ``advguard`` command line: a module per command group (``models``, ``attacks``,
``robustness``, ``detection``, ``report``, ``demo``, ``service``), each adding its
sub-commands to the parser in :mod:`advguard.cli.app`.

This module stays light on purpose: the console script restarts itself with jemalloc
before torch and the rest load, so that the libraries are imported once, not twice.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from advguard.runtime import reexec_with_jemalloc


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``advguard`` console script (``argv`` given: run in this
    process as it is, as tests do)."""
    if argv is None:
        reexec_with_jemalloc()
    from advguard.cli import app

    return app.main(argv)


def build_parser() -> argparse.ArgumentParser:
    """The ``advguard`` argument parser, with every sub-command."""
    from advguard.cli import app

    return app.build_parser()


__all__ = ["build_parser", "main"]
