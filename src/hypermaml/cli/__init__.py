"""The ``hypermaml`` command line: argument parsing and printing only.

Every command is one call into the library (``hypermaml.api``, ``hypermaml.experiments``):
``run.py`` holds the commands that train, score and export models, ``analyze.py`` the analyses
of trained checkpoints, ``study.py`` the papers' timings and toys, ``use.py`` the use of a
trained model on one's own classes.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from .._version import __version__
from ..engine.distributed import close_world, launched_world_size
from ..engine.process import keep_freed_memory
from ..errors import ConfigError, HypermamlError, describe_os_error
from ..outputs import check_writable_file
from . import analyze, data, run, study, use

LAUNCHABLE = ("train", "classify", "eval", "bench")
"""The commands torchrun may start on several processes."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypermaml",
        description="Few-shot learning: a hypernetwork, not gradient descent, adapts the model.",
    )
    parser.add_argument("--version", action="version", version=f"hypermaml {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run.register(sub)
    analyze.register(sub)
    data.register(sub)
    study.register(sub)
    use.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names. Exit status 0: done; 2: bad input (a file, a flag, a
    config), said in one line; 1: a bug, shown with its traceback; 130: interrupted."""
    args = build_parser().parse_args(argv)
    name = " ".join(filter(None, (args.command, getattr(args, "analysis", None))))
    keep_freed_memory()
    try:
        if launched_world_size() > 1 and args.command not in LAUNCHABLE:
            raise ConfigError(
                f"hypermaml {name} runs on one process; launch it without torchrun (torchrun "
                f"starts {', '.join(LAUNCHABLE)})"
            )
        check_writable_file(getattr(args, "json", None), "--json")
        return args.func(args)
    except (HypermamlError, ValueError, OSError) as exc:
        text = describe_os_error(exc) if isinstance(exc, OSError) else exc
        print(f"hypermaml {name}: error: {text}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resume = f"`hypermaml {args.command} --resume --out {getattr(args, 'out', '')}` continues"
        hint = resume if args.command in ("train", "classify") else "run the command again"
        print(f"hypermaml {name}: interrupted; {hint}", file=sys.stderr)
        return 130
    except Exception as exc:
        traceback.print_exc()
        print(f"hypermaml {name}: internal error: {type(exc).__name__}: {exc}; this is a bug in "
              f"hypermaml; please report it with the traceback above", file=sys.stderr)  # fmt: skip
        return 1
    finally:
        close_world()


if __name__ == "__main__":
    sys.exit(main())
