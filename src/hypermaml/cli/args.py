"""Arguments shared by several commands, each written once, and their checks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ..engine.distributed import current_world, init_world, launched_world_size
from ..errors import ConfigError
from ..reports import write_json


def positive_int(text: str, low: int = 1) -> int:
    """An argparse type for a count: an integer, ``low`` (1) or more."""
    if (value := int(text)) < low:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give {low} or more")
    return value


def step_count(text: str) -> int:
    """An argparse type for inner steps: an integer, 0 or more."""
    return positive_int(text, low=0)


def int_list(text: str) -> tuple[int, ...]:
    """``"1,5"`` -> (1, 5): step counts, each 0 or more."""
    return tuple(step_count(k) for k in text.split(",") if k)


def add_data_args(parser: argparse.ArgumentParser | Any, device: bool = True) -> None:
    """``--data-dir`` (and ``--device``)."""
    parser.add_argument(
        "--data-dir",
        help="folder with the data files (default: $HYPERMAML_DATA, else ~/.cache/hypermaml)",
    )
    if device:
        parser.add_argument("--device", help="auto, cpu, cuda, cuda:N or mps (default: auto)")


def add_tasks_args(parser: argparse.ArgumentParser | Any) -> None:
    """``--split``, ``--tasks`` and ``--seed`` of the test protocol: None when not given, so that
    a command tells a given flag from its default (test, 600, 0)."""
    parser.add_argument("--split", choices=["train", "val", "test"], help="(default: test)")
    parser.add_argument("--tasks", type=positive_int, help="tasks to score (default: 600)")
    parser.add_argument("--seed", type=int, help="the seed the tasks are drawn from (default: 0)")


def tasks_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The given ``--split``, ``--tasks`` (as ``n_tasks``) and ``--seed``, as keywords for a
    library function, whose defaults stand for the others."""
    given = {"split": args.split, "n_tasks": args.tasks, "seed": args.seed}
    return {key: value for key, value in given.items() if value is not None}


def add_json_arg(parser: argparse.ArgumentParser | Any, what: str = "the results") -> None:
    """``--json FILE``, which ``main`` checks can be written before the command starts."""
    parser.add_argument("--json", type=Path, help=f"write {what} as JSON to this file")


def save_json(args: argparse.Namespace, report: Any) -> None:
    """Write ``report`` to ``--json`` when it was given (by the main process of a launch)."""
    if args.json and current_world().is_main:
        write_json(args.json, report)


def join_launch(device: str | None, alone: str | None = None) -> None:
    """Join the processes torchrun started (nothing without it); the others print nothing.
    ``alone``: the command being run runs on one process, and is refused under torchrun."""
    if alone and launched_world_size() > 1:
        raise ConfigError(f"{alone} runs on one process; launch it without torchrun")
    if not init_world(device).is_main:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)


def add_precision_arg(parser: argparse.ArgumentParser | Any) -> None:
    """``--precision`` of the forward passes (``engine.precision``)."""
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="arithmetic of the forward passes (default: fp32)")  # fmt: skip
