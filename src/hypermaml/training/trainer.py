"""The episodic meta-training loop: epochs of tasks, meta-batches, validation, checkpoints."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import ExperimentConfig
from ..data import ClassImages, EpisodeSampler, TaskBatch, load_split
from ..data.episodes import Augmentation, chain
from ..data.framing import FrameAugment
from ..data.strokes import StrokeAugment
from ..evaluation import evaluate
from ..methods import Method, build_method
from ..parallel import TaskParallel
from .checkpoint import (
    CLASSIFIER,
    CheckpointError,
    init_lineage,
    load_checkpoint,
    load_train_state,
    read_meta,
    save_checkpoint,
)
from .logs import MetricLog

VAL_SEED = 1_000_003
"""Validation tasks are the same in every epoch and every run (never the test seed)."""


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, a run folder in the way)."""


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} was asked for but CUDA is not available; use cpu")
    return device


def _comparable(cfg: ExperimentConfig) -> dict:
    """The config without the fields a resumed run may change (length, hardware, validation)."""
    raw = cfg.to_dict()
    free = ("epochs", "device", "threads", "val_every")
    raw["train"] = {k: v for k, v in raw["train"].items() if k not in free}
    return raw


@dataclass
class TrainResult:
    best_val_accuracy: float
    best_epoch: int
    epochs_run: int
    """Epochs trained by this call (a resumed run counts only its new epochs)."""
    seconds: float
    """Wall time of this call's epochs."""
    total_epochs: int
    """Epochs of the whole run, earlier sessions of a resumed run included."""
    total_seconds: float
    """Wall time of the whole run, earlier sessions included."""


def meta_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: TaskBatch,
    parallel: TaskParallel | None = None,
) -> tuple[float, float]:
    """One outer step on a batch of tasks: (mean query loss, query accuracy in [0, 1]).

    With a ``parallel`` pool of W > 1 workers (and a method whose tasks are independent), the
    batch is split into W parts whose meta-gradients are computed concurrently and summed,
    weighted by their share of the tasks: the serial step's gradient up to float rounding.
    A non-finite loss leaves the weights untouched; the caller decides what to do about it.
    """
    workers = parallel.workers if parallel is not None else 1
    if workers == 1 or batch.n_tasks == 1 or not method.tasks_are_independent():
        loss, logits = method.meta_loss(batch)
        value = loss.item()
        if not math.isfinite(value):
            return value, 0.0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value, (logits.argmax(-1) == batch.query_y).float().mean().item()

    params = [p for p in method.parameters() if p.requires_grad]

    def part_step(part: TaskBatch) -> tuple[float, float, tuple]:
        share = part.n_tasks / batch.n_tasks
        loss, logits = method.meta_loss(part)
        grads = torch.autograd.grad(loss * share, params, allow_unused=True)
        correct = (logits.argmax(-1) == part.query_y).float().mean().item()
        return loss.item() * share, correct * share, grads

    results = list(parallel.map(part_step, batch.split(workers)))
    value = sum(r[0] for r in results)
    if not math.isfinite(value):
        return value, 0.0
    for i, p in enumerate(params):
        grads = [r[2][i] for r in results if r[2][i] is not None]
        p.grad = torch.stack(grads).sum(0) if grads else None
    optimizer.step()
    return value, sum(r[1] for r in results)


def training_sampler(cfg: ExperimentConfig, data: ClassImages) -> EpisodeSampler:
    """The sampler of the training tasks: the run's seed, and its augmentations if any (the
    framing, then the stroke width, so that stroke widths are pixels of the framed image)."""
    dc = cfg.data
    augments: list[Augmentation] = []
    if dc.train_zoom != 1:
        augments.append(FrameAugment(dc.train_zoom))
    if dc.train_stroke != 0:
        augments.append(StrokeAugment(dc.train_stroke))
    return EpisodeSampler(data, dc.n_way, dc.n_shot, dc.n_query, seed=cfg.train.seed,
                          augment=chain(augments))  # fmt: skip


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    init: str | Path | None = None,
) -> TrainResult:
    """Meta-train the method of ``cfg``, writing ``run_dir/{best,last}`` and logs.

    ``init``: a checkpoint of the same method and shapes whose weights start the run (a second
    training stage), or a classifier of ``hypermaml classify`` whose encoder weights start the
    method's encoder (pre-training); the optimiser and schedule start afresh.
    """
    run_dir = Path(run_dir)
    last = run_dir / "last"
    if not resume and last.exists():
        raise TrainingError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    tc, dc = cfg.train, cfg.data
    device = pick_device(tc.device)
    train_data = load_split(dc.dataset, "train", data_root)
    val_data = load_split(dc.dataset, "val", data_root)
    image_shape = tuple(train_data.images.shape[2:])
    sampler = training_sampler(cfg, train_data)
    EpisodeSampler(val_data, dc.n_way, dc.n_shot, dc.n_query_test)  # fail early on bad N/K/Q

    torch.manual_seed(tc.seed)
    method = build_method(cfg, image_shape[0], image_shape[1]).to(device)
    optimizer = torch.optim.Adam(method.parameters(), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, tc.milestones, gamma=tc.gamma)
    start_epoch, best_acc, best_epoch = 0, -math.inf, -1
    seconds_before = 0.0  # wall time of earlier sessions of a resumed run
    started_from = init_lineage(init) if init is not None and not resume else None
    if init is not None and not resume and read_meta(init)[1]["method"] == CLASSIFIER:
        from .pretrained import load_pretrained_encoder

        load_pretrained_encoder(method, init, cfg.model.backbone, cfg.model.hyper)
    elif init is not None and not resume:
        start = load_checkpoint(init, device, expect_method=cfg.method.name)
        try:
            method.load_state_dict(start.method.state_dict())
        except RuntimeError as exc:
            raise CheckpointError(
                f"{start.path} does not fit the model of this config: {exc}"
            ) from exc

    run_dir.mkdir(parents=True, exist_ok=True)
    log = MetricLog(run_dir, tensorboard)
    if resume and last.exists() or resume and last.with_name("last.old").exists():
        ckpt = load_checkpoint(last, device, expect_method=cfg.method.name)
        if _comparable(ckpt.config) != _comparable(cfg):
            raise CheckpointError(
                f"{ckpt.path} was trained with another config; resume with the config stored "
                f"in it (hypermaml train --resume --out {run_dir} without a config file; "
                f"only train.epochs, train.device, train.threads and train.val_every may change)"
            )
        state = load_train_state(ckpt.path)
        method.load_state_dict(ckpt.method.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.generator.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        start_epoch = state["epoch"] + 1
        best_acc, best_epoch = state["best_acc"], state["best_epoch"]
        seconds_before = state.get("seconds", 0.0)
        started_from = ckpt.meta.get("started_from")
        log.truncate_after(start_epoch)

    steps = max(1, tc.episodes_per_epoch // tc.meta_batch)
    parallel = TaskParallel.for_device(device, tc.threads)
    started = time.perf_counter()
    epochs = range(start_epoch, tc.epochs)
    bar = tqdm(epochs, desc=f"{cfg.method.name} {dc.dataset}", disable=not progress, unit="epoch")
    threads_before = torch.get_num_threads()
    if tc.threads and device.type == "cpu":
        # The run uses this many cores: W task workers run single-threaded, and a single worker
        # must not leave PyTorch's default of one intra-op thread per core behind it (OpenMP
        # threads spinning against other processes slow a busy machine several times).
        torch.set_num_threads(tc.threads)
    try:
        with parallel:  # worker threads for the whole run, evaluation included
            for epoch in bar:
                method.train()
                method.set_epoch(epoch)
                total_loss, total_acc = 0.0, 0.0
                for step in range(steps):
                    batch = sampler.sample(tc.meta_batch).to(device)
                    loss, accuracy = meta_step(method, optimizer, batch, parallel)
                    if not math.isfinite(loss):
                        raise TrainingError(
                            f"the training loss became {loss} at epoch {epoch}, step {step}. "
                            f"Lower train.lr (now {scheduler.get_last_lr()[0]:g}) and resume "
                            f"from the last good checkpoint in {last} with --resume."
                        )
                    total_loss += loss
                    total_acc += accuracy
                scheduler.step()
                metrics = {
                    "train_loss": total_loss / steps,
                    "train_accuracy": 100.0 * total_acc / steps,
                    "lr": scheduler.get_last_lr()[0],
                }
                if (epoch + 1) % tc.val_every == 0 or epoch + 1 == tc.epochs:
                    val = evaluate(
                        method, val_data, dc.n_way, dc.n_shot, dc.n_query_test, tc.val_tasks,
                        seed=VAL_SEED, parallel=parallel,
                    )  # fmt: skip
                    metrics["val_accuracy"], metrics["val_ci95"] = val.accuracy, val.ci95
                metrics["seconds"] = seconds_before + time.perf_counter() - started
                log.write(epoch, metrics)
                if metrics.get("val_accuracy", -math.inf) > best_acc:
                    best_acc, best_epoch = metrics["val_accuracy"], epoch
                    save_checkpoint(run_dir / "best", method, cfg, image_shape, epoch, metrics,
                                    started_from=started_from)  # fmt: skip
                train_state = {
                    "epoch": epoch,
                    "best_acc": best_acc,
                    "best_epoch": best_epoch,
                    "seconds": metrics["seconds"],
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "sampler": sampler.generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "numpy_rng": np.random.get_state(),
                    "python_rng": random.getstate(),
                }
                save_checkpoint(last, method, cfg, image_shape, epoch, metrics, train_state,
                                started_from)  # fmt: skip
                bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", best_val=f"{best_acc:.2f}")
    finally:
        torch.set_num_threads(threads_before)
    log.close()
    seconds = time.perf_counter() - started
    return TrainResult(
        best_acc, best_epoch, tc.epochs - start_epoch, seconds, tc.epochs, seconds_before + seconds
    )
