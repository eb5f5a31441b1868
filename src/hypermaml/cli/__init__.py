"""The ``hypermaml`` command line: argument parsing and printing only.

Every command is one call into the library (``hypermaml.api``, ``hypermaml.experiments``):
``run.py`` holds the commands that train, score and export models, ``study.py`` those that
reproduce the papers' analyses and timings.
"""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from ..engine.process import keep_freed_memory
from ..errors import HypermamlError
from . import run, study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypermaml",
        description="Few-shot learning: a hypernetwork, not gradient descent, adapts the model.",
    )
    parser.add_argument("--version", action="version", version=f"hypermaml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.register(sub)
    study.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except (HypermamlError, ValueError) as exc:
        print(f"hypermaml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; `hypermaml train --resume --out RUN` continues a run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
