"""The record of what was scored: every evaluation of a run's checkpoint, and the ledger of runs.

``hypermaml eval`` of a checkpoint inside a run folder (``RUN/best``, ``RUN/final``, ...)
appends one line to ``RUN/evaluations.jsonl``: when, which checkpoint, which split and tasks,
and the score. The ledger (``hypermaml analyze ledger``) is a CSV with one row per run: what it
trained, for how long, its best validation accuracy, its test score and how many times its test
split was scored. It lists every run given to it, whatever it scored, so that a reader can see
every variant behind a reported figure and how often the test split was looked at.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..checkpoint import META
from ..errors import CheckpointError
from ..outputs import MARKER, write_text_atomic

EVALUATIONS = "evaluations.jsonl"
"""One JSON object a line: an evaluation of one of the run's checkpoints."""
RUN_CHECKPOINTS = ("best", "final", "last")


def run_folder_of(checkpoint: str | Path) -> Path | None:
    """The run folder holding the checkpoint folder ``checkpoint`` (``RUN/best`` -> ``RUN``), or
    None for a checkpoint outside a run (a shipped or exported one)."""
    path = Path(checkpoint)
    parent = path.parent
    in_run = (parent / MARKER).is_file() or (parent / "metrics.csv").is_file()
    if (path / META).is_file() and in_run:
        return parent
    return None


def record_evaluation(checkpoint: str | Path, score: dict[str, Any]) -> Path | None:
    """Append ``score`` (a score's ``to_dict()``) with the time and the checkpoint's name to its
    run's ``evaluations.jsonl``; returns that file, or None when ``checkpoint`` is in no run."""
    run = run_folder_of(checkpoint)
    if run is None:
        return None
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "checkpoint_name": Path(checkpoint).name, **score}  # fmt: skip
    line = json.dumps(entry, sort_keys=True) + "\n"
    # one write of a line under O_APPEND: concurrent evaluations never interleave their lines
    fd = os.open(run / EVALUATIONS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return run / EVALUATIONS


def read_evaluations(run: str | Path) -> list[dict[str, Any]]:
    """The evaluations recorded in ``run``, oldest first (none: an empty list)."""
    file = Path(run) / EVALUATIONS
    if not file.is_file():
        return []
    out = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as exc:
            raise CheckpointError(f"{file} line {number} is garbled ({exc})") from exc
    return out


@dataclass
class LedgerRow:
    """One run: what it trained, how long, its validation and test figures."""

    run: str
    method: str
    dataset: str
    n_way: int
    n_shot: int
    seed: int
    started_from: str
    """The checkpoint an ``--init`` run started from ("" for none)."""
    epochs: int
    """Epochs trained (the best checkpoint's run, all sessions)."""
    episodes: int
    """Training tasks seen (epochs x episodes per epoch)."""
    hours: float
    """Wall time of the run's sessions."""
    best_epoch: int
    val_accuracy: float
    """The best validation accuracy (the checkpoint chosen by it: ``best``)."""
    test_accuracy: float | None
    """The latest test score of that checkpoint (None: never scored on the test split)."""
    test_ci95: float | None
    test_tasks: int | None
    test_evaluations: int
    """Times any checkpoint of the run was scored on the test split."""


def ledger_row(run: str | Path, name: str | None = None) -> LedgerRow:
    """The ledger row of the run folder ``run`` (named ``name``, default its folder name)."""
    run = Path(run)
    checkpoint = next((run / c for c in RUN_CHECKPOINTS if (run / c / META).is_file()), None)
    if checkpoint is None:
        raise CheckpointError(f"{run} holds no complete checkpoint (best, final or last)")
    meta = json.loads((checkpoint / META).read_text())
    config = meta["config"]
    last = run / "last" / META
    last_meta = json.loads(last.read_text()) if last.is_file() else meta
    epochs = int(last_meta.get("epoch", meta.get("epoch", -1))) + 1
    seconds = float(last_meta.get("metrics", {}).get("seconds", 0.0))  # cumulative
    tests = [e for e in read_evaluations(run) if e.get("split") == "test"]
    chosen = [e for e in tests if e.get("checkpoint_name") == checkpoint.name]
    # the run's own task shape first: a model scored on other N (a 20-way look at a 5-way
    # model) keeps its row's figure the one its N and K name
    shape = (config["data"]["dataset"], config["data"]["n_way"], config["data"]["n_shot"])
    own = [e for e in chosen if (e.get("dataset"), e.get("n_way"), e.get("n_shot")) == shape]
    latest = (own or chosen or [None])[-1]
    started = meta.get("started_from") or {}
    return LedgerRow(
        run=name or run.name, method=meta["method"], dataset=config["data"]["dataset"],
        n_way=config["data"]["n_way"], n_shot=config["data"]["n_shot"],
        seed=config["train"]["seed"], started_from=str(started.get("path", "")),
        epochs=epochs, episodes=epochs * int(config["train"]["episodes_per_epoch"]),
        hours=round(seconds / 3600, 2), best_epoch=int(meta.get("epoch", -1)),
        val_accuracy=round(float(meta.get("metrics", {}).get("val_accuracy", float("nan"))), 2),
        test_accuracy=None if latest is None else round(latest["accuracy"], 2),
        test_ci95=None if latest is None or latest.get("ci95") is None
        else round(latest["ci95"], 2),
        test_tasks=None if latest is None else latest.get("n_tasks", latest.get("n_images")),
        test_evaluations=len(tests),
    )  # fmt: skip


def update_ledger(file: str | Path, rows: list[LedgerRow]) -> list[LedgerRow]:
    """Write ``rows`` into the ledger CSV ``file`` (created if absent): a run already listed
    is updated in place, a new one appended; no row is ever dropped. Returns all rows."""
    file = Path(file)
    names = [f.name for f in fields(LedgerRow)]
    existing: dict[str, dict[str, Any]] = {}
    if file.is_file():
        with file.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames != names:
                raise CheckpointError(
                    f"{file} is not a ledger of this version (columns {reader.fieldnames}); "
                    f"write to another file"
                )
            existing = {r["run"]: r for r in reader}
    for row in rows:
        existing[row.run] = asdict(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(existing.values())
    write_text_atomic(file, out.getvalue())
    return [_typed(r) for r in existing.values()]


def _typed(raw: dict[str, Any]) -> LedgerRow:
    """A ledger row read back from the CSV (every value a string there)."""
    out: dict[str, Any] = {}
    for f in fields(LedgerRow):
        value = raw[f.name]
        if value in ("", None) and f.name != "started_from":
            out[f.name] = None
        elif f.type in ("int", "int | None"):
            out[f.name] = int(value)
        elif f.type in ("float", "float | None"):
            out[f.name] = float(value)
        else:
            out[f.name] = value
    return LedgerRow(**out)
