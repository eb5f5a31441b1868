"""A training run's folder, shared by meta-training and classifier training.

``RUN/last`` is rewritten after every epoch with the weights and the training state (epoch, wall
time, optimiser, schedule and every random generator), so an interrupted run resumes exactly;
the run's results go beside it (``best/`` or ``final/``), with ``metrics.csv`` and ``tb/``.

The folder is claimed before anything is written (``outputs.claim_folder``: a folder hypermaml
did not create is refused unless ``force``, and nothing in it is ever overwritten) and locked
while the run writes it. Whether a folder holds a run is one question, ``run_checkpoint``: the
latest complete ``last`` checkpoint, whatever name an interrupted write left it under. A new run
refuses a folder that holds one; ``--resume`` refuses one that does not; a resumed run must keep
its config, but for the fields that may change between sessions (its length, the hardware).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import (
    FORMAT_VERSION,
    META,
    Kind,
    latest_complete,
    leftovers,
    load_train_state,
    read_meta,
    stored_config,
    stored_format,
)
from ..errors import CheckpointError, TrainingError
from ..outputs import claim_folder, locked
from .logs import MetricLog

WRITES = ("last", "last.*", "best", "best.*", "final", "final.*", "metrics.csv", "tb")
"""What a run writes in its folder (glob patterns): a folder adopted with ``force`` must not
hold any of them already."""


def run_checkpoint(path: str | Path) -> Path | None:
    """The checkpoint a resume of the run in ``path`` starts from (the latest complete ``last``,
    or a complete copy an interrupted write left beside it), or None when ``path`` holds no run.
    A folder whose ``last`` was once complete but no copy of it is now (corrupt files) is an
    error, never "no run"; only a first write cut short (``last.tmp-*`` alone) means none."""
    path = Path(path)
    found = latest_complete(path, "last", train_state=True)
    partial = [p for p in leftovers(path, "last") if ".tmp" not in p.name]
    if found is None and partial:
        if any((stored_format(p) or FORMAT_VERSION) < FORMAT_VERSION for p in partial):
            raise CheckpointError(
                f"{path} holds a run written in an older checkpoint format; migrate it once "
                f"with `hypermaml upgrade {path}`, then resume"
            )
        names = ", ".join(p.name for p in partial)
        raise CheckpointError(
            f"{path} holds a run whose checkpoints are all incomplete or corrupt ({names}); "
            f"it cannot be resumed. Move the folder away to start the run again"
        )
    return found


def _holds_checkpoints(path: Path) -> bool:
    """Whether ``path`` holds checkpoints of a run (a folder written before runs were marked)."""
    if any(latest_complete(path, name) is not None for name in ("last", "best", "final")):
        return True
    return any((copy / META).is_file() for copy in leftovers(path, "last"))


@dataclass
class Resume:
    """Where a resumed run continues: its ``last`` checkpoint and training state."""

    path: Path
    meta: dict[str, Any]
    state: dict[str, Any]

    @property
    def start_epoch(self) -> int:
        return self.state["epoch"] + 1

    @property
    def seconds(self) -> float:
        """Wall time of the run's earlier sessions."""
        return self.state.get("seconds", 0.0)


class RunFolder:
    """The claimed and locked folder of one run (``command``: ``train`` or ``classify``, for
    the messages). ``resume``: True continues the run there (which must exist), False starts a
    new one (there must be none), None does whichever applies (``--resume-if-exists``)."""

    def __init__(self, path: Path, command: str, resume: bool | None) -> None:
        self.path, self.command = path, command
        self.last = path / "last"
        self.checkpoint = run_checkpoint(path)
        if resume is False and self.checkpoint is not None:
            raise TrainingError(
                f"{path} already holds a run; pass --resume to continue it or choose another --out"
            )
        if resume is True and self.checkpoint is None:
            raise TrainingError(
                f"{path} holds no run to resume (no complete last/ checkpoint); start one with "
                f"hypermaml {command} CONFIG --out {path}"
            )
        self.resuming = self.checkpoint is not None

    @classmethod
    @contextmanager
    def open(
        cls, path: str | Path, command: str, resume: bool | None, force: bool = False
    ) -> Iterator[RunFolder]:
        """Claim and lock ``path`` for the body of the ``with`` block."""
        if resume is True and not Path(path).is_dir():
            raise TrainingError(
                f"{path} holds no run to resume (the folder does not exist); start one with "
                f"hypermaml {command} CONFIG --out {path}"
            )
        path = claim_folder(path, f"{command} (run folder)", force, WRITES, _holds_checkpoints)
        with locked(path, command):
            yield cls(path, command, resume)

    def resume(
        self, config: Any, free: Mapping[str, tuple[str, ...]], expect_kind: Kind, epochs: int
    ) -> Resume | None:
        """The run's ``last`` state when resuming (None for a new run), after checking that it
        is a run of ``expect_kind`` trained with ``config`` (a RootConfig) up to the ``free``
        fields ({section: field names}) that a resumed run may change, and that ``epochs`` (the
        config's length) is not below what the run has already done."""
        if self.checkpoint is None:
            return None
        path, meta = read_meta(self.checkpoint, expect=expect_kind)
        stored = stored_config(path, meta, type(config))
        if _comparable(stored.to_dict(), free) != _comparable(config.to_dict(), free):
            fields = ", ".join(f"{s}.{f}" for s, names in free.items() for f in names)
            raise CheckpointError(
                f"{path} was trained with another config; resume with the config stored in it "
                f"(hypermaml {self.command} --resume --out {self.path} without a config file; "
                f"only {fields} may change)"
            )
        resume = Resume(path, meta, load_train_state(path, meta))
        if epochs < resume.start_epoch:
            raise TrainingError(
                f"the run in {self.path} has already trained {resume.start_epoch} epochs and "
                f"the config asks for {epochs}; a run is never shortened: ask for more epochs "
                f"to continue it, or score its checkpoints as they are"
            )
        return resume

    def open_log(self, fields: tuple[str, ...], tensorboard: bool, start_epoch: int) -> MetricLog:
        """The run's metric log, without the rows written from ``start_epoch`` on (the epoch
        the run starts from: 0 for a new run, whose killed first attempt may have left rows)."""
        log = MetricLog(self.path, tensorboard, fields)
        log.truncate_after(start_epoch)
        return log


def _comparable(raw: dict[str, Any], free: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    return {
        section: {k: v for k, v in values.items() if k not in free.get(section, ())}
        if isinstance(values, dict)
        else values
        for section, values in raw.items()
    }


def training_state(
    epoch: int,
    seconds: float,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    **extra: Any,
) -> dict[str, Any]:
    """What the training state holds after ``epoch``: the optimiser, the schedule, the torch,
    numpy and Python random generators, and the loop's own ``extra`` entries."""
    return {
        "epoch": epoch,
        "seconds": seconds,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        **extra,
    }


def restore_training_state(
    state: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> None:
    """Put the optimiser, the schedule and the random generators back as ``training_state``
    captured them."""
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
