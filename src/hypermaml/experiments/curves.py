"""Validation curves of training runs, with later training stages placed after their start.

A run folder holds ``metrics.csv`` (one row per epoch; validation columns filled in the epochs
that were validated). A run started with ``--init`` records in its checkpoints the epoch of the
checkpoint it started from (``started_from``), so its curve is drawn from the epoch after that
one: the stages of a chain of runs line up on one epoch axis.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from .plotting import pyplot

RUN_FOLDER = (
    "a run folder (the --out of hypermaml train) holds metrics.csv, one row per epoch with its "
    "epoch and val_accuracy, beside its last/ and best/ checkpoints"
)
"""What ``analyze curves`` reads, for its messages."""


@dataclass
class Curve:
    label: str
    epochs: list[int]
    """Epochs on the shared axis (the run's own epochs plus ``offset``)."""
    accuracy: list[float]
    offset: int
    """Epochs trained before this run by the stages it started from."""


def _run_folder(path: Path) -> Path:
    """The folder holding ``metrics.csv``: ``path`` itself, or the run of a checkpoint folder."""
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise CheckpointError(f"{path} {what}; pass a run folder: {RUN_FOLDER}")
    for folder in (path, path.parent):
        if (folder / "metrics.csv").is_file():
            return folder
    raise CheckpointError(
        f"{path} holds no metrics.csv; pass a run folder or a checkpoint folder inside one "
        f"({RUN_FOLDER})"
    )


def _validated_rows(file: Path) -> list[tuple[int, float]]:
    """(epoch, validation accuracy) of every validated epoch in ``file`` (a run's metrics.csv),
    refused with the fix when the file is empty or is not such a table."""
    with open(file, newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            columns = reader.fieldnames or []
            if not {"epoch", "val_accuracy"} <= set(columns):
                found = f"its columns are {', '.join(columns)}" if columns else "it is empty"
                raise CheckpointError(
                    f"{file} has no epoch and val_accuracy columns ({found}); {RUN_FOLDER} "
                    f"(a classifier run of hypermaml classify scores test accuracy instead)"
                )
            return [(int(r["epoch"]), float(r["val_accuracy"])) for r in reader
                    if r["val_accuracy"]]  # fmt: skip
        except (TypeError, ValueError, csv.Error) as exc:
            raise CheckpointError(
                f"{file} line {reader.line_num} is garbled ({exc}); {RUN_FOLDER}"
            ) from exc


def _read_meta(meta_path: Path) -> dict:
    """A checkpoint's ``checkpoint.json``, or a CheckpointError naming the file."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{meta_path} is unreadable ({exc}); the checkpoint is corrupt"
        ) from exc
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} is not a checkpoint's metadata (not a mapping)")
    return meta


def _start_offset(folder: Path) -> int:
    """Epochs before this run: the start checkpoint's epoch + 1, summed along the lineage."""
    for name in ("checkpoint.json", "last/checkpoint.json", "best/checkpoint.json"):
        meta_path = folder / name
        if meta_path.is_file():
            meta = _read_meta(meta_path)
            offset, start = 0, meta.get("started_from")
            while start is not None:
                offset += int(start.get("epoch") or 0) + 1
                start = start.get("started_from")
            return offset
    return 0


def read_curve(path: str | Path, label: str | None = None) -> Curve:
    """The validation accuracy of the run at ``path`` against epochs of the whole lineage."""
    folder = _run_folder(Path(path))
    rows = _validated_rows(folder / "metrics.csv")
    offset = _start_offset(Path(path) if (Path(path) / "checkpoint.json").is_file() else folder)
    return Curve(label or str(path), [e + offset for e, _ in rows], [a for _, a in rows], offset)


def read_curves(runs: list[str | Path], labels: list[str] | None = None) -> list[Curve]:
    """``read_curve`` of every run, labelled by ``labels`` (one per run) or by its path."""
    if labels is not None and len(labels) != len(runs):
        raise ConfigError(f"--labels names {len(labels)} runs, but {len(runs)} were given")
    return [read_curve(run, label) for run, label in zip(runs, labels or [None] * len(runs))]


def describe(curve: Curve) -> str:
    """One line: where the curve starts, its best and its last validated epoch."""
    best = max(range(len(curve.accuracy)), key=curve.accuracy.__getitem__, default=None)
    text = "no validated epoch" if best is None else (
        f"best {curve.accuracy[best]:.2f}% at epoch {curve.epochs[best]}, last "
        f"{curve.accuracy[-1]:.2f}% at epoch {curve.epochs[-1]}")  # fmt: skip
    if curve.offset:
        return f"{curve.label}: starts after epoch {curve.offset - 1}; {text}"
    return f"{curve.label}: {text}"


def plot_curves(curves: list[Curve], path: str | Path, title: str = "") -> None:
    """Validation accuracy against epoch, one line per run."""
    plt = pyplot("the curves figure")
    fig, ax = plt.subplots(figsize=(7, 4))
    for curve in curves:
        ax.plot(curve.epochs, curve.accuracy, linewidth=1, label=curve.label)
    ax.set_xlabel("epoch (later stages continue the epochs of the stage they started from)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(title or "validation accuracy", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
