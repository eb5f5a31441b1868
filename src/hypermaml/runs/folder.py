"""A training run's folder, shared by meta-training and classifier training.

``RUN/last`` is rewritten after every epoch with the weights and ``train_state.pt`` (epoch, wall
time, optimiser, schedule and every random generator), so an interrupted run resumes exactly;
the run's results go beside it (``best/`` or ``final/``), with ``metrics.csv`` and ``tb/``. A new
run refuses a folder that already holds one; a resumed run must keep its config, but for the
fields that may change between sessions (its length, the hardware).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import Kind, load_train_state, read_meta, stored_config
from ..errors import CheckpointError, TrainingError
from .logs import MetricLog


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
    """The folder of one run (``command``: ``train`` or ``classify``, for the messages)."""

    def __init__(self, path: str | Path, resume: bool, command: str) -> None:
        self.path, self.command = Path(path), command
        self.last = self.path / "last"
        if not resume and self.has_run():
            raise TrainingError(
                f"{self.path} already holds a run; pass --resume to continue it or choose "
                f"another --out"
            )
        self.resuming = resume and self.has_run()

    def has_run(self) -> bool:
        """Whether ``last`` exists (or its copy from an interrupted save)."""
        return self.last.exists() or self.last.with_name("last.old").exists()

    def resume(
        self, config: Any, free: Mapping[str, tuple[str, ...]], expect_kind: Kind
    ) -> Resume | None:
        """The run's ``last`` state when resuming (None for a new run), after checking that it
        is a run of ``expect_kind`` trained with ``config`` (a RootConfig) up to the ``free``
        fields ({section: field names}) that a resumed run may change."""
        if not self.resuming:
            return None
        path, meta = read_meta(self.last, expect=expect_kind)
        stored = stored_config(path, meta, type(config))
        if _comparable(stored.to_dict(), free) != _comparable(config.to_dict(), free):
            fields = ", ".join(f"{s}.{f}" for s, names in free.items() for f in names)
            raise CheckpointError(
                f"{path} was trained with another config; resume with the config stored in it "
                f"(hypermaml {self.command} --resume --out {self.path} without a config file; "
                f"only {fields} may change)"
            )
        return Resume(path, meta, load_train_state(path))

    def open_log(
        self, fields: tuple[str, ...], tensorboard: bool, resume: Resume | None
    ) -> MetricLog:
        """The run's metric log, without the rows written after the state a resume starts from."""
        self.path.mkdir(parents=True, exist_ok=True)
        log = MetricLog(self.path, tensorboard, fields)
        if resume is not None:
            log.truncate_after(resume.start_epoch)
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
    """What ``train_state.pt`` holds after ``epoch``: the optimiser, the schedule, the torch,
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
    if "numpy_rng" in state:
        np.random.set_state(state["numpy_rng"])
    if "python_rng" in state:
        random.setstate(state["python_rng"])
