"""Arguments shared by several commands, each written once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..reports import write_json


def add_data_args(parser: argparse.ArgumentParser | Any, device: bool = True) -> None:
    """``--data-dir`` (and ``--device``)."""
    parser.add_argument(
        "--data-dir",
        help="folder with the data files (default: $HYPERMAML_DATA, else ~/.cache/hypermaml)",
    )
    if device:
        parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")


def add_tasks_args(parser: argparse.ArgumentParser | Any) -> None:
    """``--tasks``, ``--seed`` and ``--split`` of the test protocol."""
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--tasks", type=int, default=600, help="tasks to score (600)")
    parser.add_argument("--seed", type=int, default=0, help="the seed the tasks are drawn from")


def add_json_arg(parser: argparse.ArgumentParser | Any, what: str = "the results") -> None:
    parser.add_argument("--json", type=Path, help=f"write {what} as JSON to this file")


def save_json(args: argparse.Namespace, report: Any) -> None:
    """Write ``report`` to ``--json`` when it was given."""
    if args.json:
        write_json(args.json, report)


def int_list(text: str) -> tuple[int, ...]:
    """``"1,5"`` -> (1, 5)."""
    return tuple(int(k) for k in text.split(",") if k)
