"""Where a meta-training run starts: a new run, a resumed one, or a stage started from another
checkpoint (``--init``); and, on several processes, the same start on every rank.

Only the main rank reads the run folder (which other machines of a multi-node launch may not
see); it then sends the weights, the optimiser's, schedule's and gradient scaler's states and
the loop's counters to the other ranks, so every rank starts bit-identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import checkpoint_kind, init_lineage
from ..config import ExperimentConfig
from ..data import EpisodeSampler
from ..engine.distributed import World
from ..engine.precision import Precision
from ..errors import ConfigError, TrainingError
from ..methods import Method, load_weights
from ..runs import RunFolder, restore_training_state
from .pretrained import load_pretrained_encoder

FREE_FIELDS = {
    "train": ("epochs", "device", "threads", "tasks_per_pass", "val_every", "deterministic")
}
"""Fields a resumed run may change: its length, the hardware and how a meta-batch is split over
it, how often it validates and whether its kernels are pinned."""


@dataclass
class Start:
    """The loop's counters where the run starts (epoch 0 for a new run)."""

    epoch: int = 0
    best_acc: float = -math.inf
    best_epoch: int = -1
    seconds_before: float = 0.0
    """Wall time of the earlier sessions of a resumed run."""
    started_from: dict[str, Any] | None = None
    """The lineage of a run started with ``--init`` (kept by its resumes)."""


def check_world(cfg: ExperimentConfig, world: World) -> None:
    """Refuse a config that several processes cannot share exactly."""
    if not world.distributed:
        return
    tc = cfg.train
    if tc.task_stream != "keyed":
        raise ConfigError(
            f"train.task_stream={tc.task_stream} draws the tasks from one generator and cannot "
            f"be shared among {world.size} processes; set train.task_stream=keyed (a new run), "
            f"or continue this run on one process"
        )
    if tc.meta_batch < world.size:
        raise ConfigError(
            f"train.meta_batch={tc.meta_batch} tasks cannot be shared among {world.size} "
            f"processes; launch at most {tc.meta_batch} or raise train.meta_batch"
        )


def check_shareable(method: Method, world: World) -> None:
    """Refuse a method whose tasks change shared state (running BatchNorm statistics)."""
    if world.distributed and not method.tasks_are_independent():
        raise ConfigError(
            "this model keeps running BatchNorm statistics, which each process would update "
            "differently; train it on one process, or use model.bn=transductive (per-task "
            "statistics, never synchronised)"
        )


def start_run(
    cfg: ExperimentConfig,
    folder: RunFolder | None,
    method: Method,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    sampler: EpisodeSampler,
    precision: Precision,
    init: str | Path | None,
    world: World,
) -> Start:
    """Load the run's start into the model, optimiser, schedule, sampler and scaler on every
    rank: the main rank reads ``folder`` (None elsewhere) and ``init``, the others receive."""

    def load() -> Start:
        resumed = folder.resume(cfg, FREE_FIELDS, "few_shot", cfg.train.epochs)
        if resumed is None:
            if init is None:
                return Start()
            _start_from(method, init, cfg)
            return Start(started_from=init_lineage(init))
        started_from = resumed.meta.get("started_from")
        _check_same_start(init, started_from, folder)
        load_weights(method, resumed.path, expect_method=cfg.method.name)
        restore_training_state(resumed.state, optimizer, scheduler)
        precision.load_state_dict(resumed.state.get("scaler", {}))
        if resumed.state.get("sampler") is not None:  # the sequential stream's generator
            sampler.generator.set_state(resumed.state["sampler"])
        state = resumed.state
        return Start(resumed.start_epoch, state["best_acc"], state["best_epoch"], resumed.seconds,
                     started_from)  # fmt: skip

    start = world.on_main(load)
    world.broadcast_state_(method, optimizer, scheduler, precision)
    return world.broadcast_object(start)


def _check_same_start(
    init: str | Path | None, started_from: dict | None, folder: RunFolder
) -> None:
    """A resumed run keeps the start it was created with: ``--init`` must name it again or be
    left out."""
    if init is None:
        return
    if started_from is None or Path(started_from["path"]) != Path(init):
        was = "no --init" if started_from is None else f"--init {started_from['path']}"
        raise TrainingError(
            f"the run in {folder.path} was started with {was}, not --init {init}; resume it "
            f"without --init, or choose another --out for a run started from {init}"
        )


def _start_from(method: Method, init: str | Path, cfg: ExperimentConfig) -> None:
    """Load the weights ``--init`` names: a classifier's into the encoder, or a few-shot
    checkpoint of the same method whole."""
    if checkpoint_kind(init) == "classifier":
        load_pretrained_encoder(method, init, cfg.model)
    else:
        load_weights(method, init, expect_method=cfg.method.name)
