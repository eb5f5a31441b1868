"""The episodic meta-training loop: epochs of tasks, meta-batches, validation, checkpoints."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..config import ExperimentConfig
from ..data import ClassImages, EpisodeSampler, load_split
from ..data.episodes import Augmentation, TaskBatch, chain
from ..data.framing import FrameAugment
from ..data.strokes import StrokeAugment
from ..engine import kernels
from ..engine.device import pick_device
from ..engine.distributed import World, current_world, world_device
from ..engine.parallel import TaskParallel
from ..engine.precision import Precision
from ..errors import TrainingError
from ..evaluation import evaluate
from ..extras import require
from ..methods import build_method, save_method
from ..runs import RunFolder, training_state
from ..runs.logs import FIELDS
from .start import check_shareable, check_world, start_run
from .step import meta_step

VAL_SEED = 1_000_003
"""Validation tasks are the same in every epoch and every run (never the test seed)."""


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

    def describe(self, out: str | Path) -> str:
        """The one line ``hypermaml train`` prints."""
        whole = ""
        if self.total_epochs != self.epochs_run:
            whole = f" (the whole run: {self.total_epochs} epochs in {self.total_seconds:.0f} s)"
        return (
            f"best validation accuracy {self.best_val_accuracy:.2f}% at epoch "
            f"{self.best_epoch}; {self.epochs_run} epochs in {self.seconds:.0f} s{whole}; "
            f"checkpoints in {Path(out) / 'best'} and {Path(out) / 'last'}"
        )


def training_sampler(cfg: ExperimentConfig, data: ClassImages) -> EpisodeSampler:
    """The sampler of the training tasks: the run's seed, and its augmentations if any (the
    framing, then the stroke width, so that stroke widths are pixels of the framed image; the
    photo augmentation of natural images)."""
    dc = cfg.data
    augments: list[Augmentation] = []
    if dc.train_zoom != 1:
        augments.append(FrameAugment(dc.train_zoom))
    if dc.train_stroke != 0:
        augments.append(StrokeAugment(dc.train_stroke))
    if dc.train_aug:
        require("kornia", "data.train_aug (the augmentation of natural images)")
        from ..data.photo_augment import PhotoAugment

        augments.append(PhotoAugment(size=data.image_shape[1]))
    return EpisodeSampler(data, dc.train_shape, seed=cfg.train.seed, augment=chain(augments))


def train(
    cfg: ExperimentConfig,
    run_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool | None = False,
    progress: bool = True,
    tensorboard: bool = True,
    init: str | Path | None = None,
    force: bool = False,
) -> TrainResult:
    """Meta-train the method of ``cfg``, writing ``run_dir/{best,last}`` and logs.

    ``resume``: False starts a new run (``run_dir`` must hold none), True continues the run in
    ``run_dir`` exactly where it stopped, None does whichever applies. ``init``: a checkpoint of
    the same method and shapes whose weights start a new run (a second training stage), or a
    classifier of ``hypermaml classify`` whose encoder weights start the method's encoder
    (pre-training); the optimiser and schedule start afresh. ``force``: adopt an existing
    folder hypermaml did not create (nothing in it is overwritten).

    Launched by torchrun (``engine.distributed.init_world`` joined), every process trains its
    share of each meta-batch and takes the same step; the main rank alone reads and writes
    ``run_dir``. A run may be resumed with another number of processes.
    """
    world = current_world()
    check_world(cfg, world)
    with contextlib.ExitStack() as stack:
        folder = world.on_main(
            lambda: stack.enter_context(RunFolder.open(run_dir, "train", resume, force))
        )
        with kernels.deterministic(cfg.train.deterministic):
            return _train(cfg, folder, world, data_root, progress and world.is_main,
                          tensorboard, init)  # fmt: skip


def _train(
    cfg: ExperimentConfig,
    folder: RunFolder | None,
    world: World,
    data_root: str | Path | None,
    progress: bool,
    tensorboard: bool,
    init: str | Path | None,
) -> TrainResult:
    """The run on this rank; ``folder`` is None on every rank but the main one."""
    tc, dc = cfg.train, cfg.data
    device = pick_device(world_device(tc.device, world))
    train_data = load_split(dc.dataset, "train", data_root, **dc.load_options())
    val_data = load_split(dc.dataset, "val", data_root, **dc.load_options())
    image_shape = train_data.image_shape
    sampler = training_sampler(cfg, train_data)
    EpisodeSampler(val_data, dc.test_shape)  # fail early on bad N/K/Q

    torch.manual_seed(tc.seed)
    method = build_method(cfg, image_shape).to(device)
    check_shareable(method, world)
    optimizer = torch.optim.Adam(method.parameters(), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, tc.milestones, gamma=tc.gamma)
    precision = Precision(tc.precision, device)
    start = start_run(cfg, folder, method, optimizer, scheduler, sampler, precision, init, world)
    log = folder.open_log(FIELDS, tensorboard, start.epoch) if folder else None
    best_acc, best_epoch = start.best_acc, start.best_epoch

    steps = tc.episodes_per_epoch // tc.meta_batch  # TrainConfig checks it is >= 1
    parallel = TaskParallel.for_device(device, tc.threads)
    started = time.perf_counter()
    epochs = range(start.epoch, tc.epochs)
    bar = tqdm(epochs, desc=f"{cfg.method.name} {dc.dataset}", disable=not progress, unit="epoch")
    threads_before = torch.get_num_threads()
    if tc.threads and device.type == "cpu":
        # The run uses this many cores: W task workers run single-threaded, and a single worker
        # must not leave PyTorch's default of one intra-op thread per core behind it (OpenMP
        # threads spinning against other processes slow a busy machine several times).
        torch.set_num_threads(tc.threads)
    host_checks = device.type != "cuda"  # on CUDA the losses are read once per epoch
    try:
        with parallel:  # worker threads for the whole run, evaluation included
            for epoch in bar:
                method.train()
                method.set_epoch(epoch)
                total_loss = torch.zeros((), device=device)
                total_acc = torch.zeros((), device=device)
                for step in range(steps):
                    batch = _next_batch(sampler, cfg, world, epoch * steps + step, device)
                    loss, accuracy = meta_step(
                        method, optimizer, batch, parallel, tc.tasks_per_pass, precision,
                        world, tc.meta_batch, check_finite=host_checks,
                    )  # fmt: skip
                    if host_checks:
                        _check_finite(loss.item(), epoch, step, scheduler, folder)
                    total_loss += loss
                    total_acc += accuracy
                if not host_checks:  # the CPU checked every step
                    _check_finite(total_loss.item(), epoch, None, scheduler, folder)
                scheduler.step()
                metrics = {
                    "train_loss": total_loss.item() / steps,
                    "train_accuracy": 100.0 * total_acc.item() / steps,
                    "lr": scheduler.get_last_lr()[0],
                }
                if (epoch + 1) % tc.val_every == 0 or epoch + 1 == tc.epochs:
                    val = evaluate(method, val_data, dc.test_shape, tc.val_tasks, seed=VAL_SEED,
                                   parallel=parallel, world=world, precision=precision)  # fmt: skip
                    metrics["val_accuracy"], metrics["val_ci95"] = val.accuracy, val.ci95
                metrics["seconds"] = start.seconds_before + time.perf_counter() - started
                if metrics.get("val_accuracy", -math.inf) > best_acc:
                    best_acc, best_epoch = metrics["val_accuracy"], epoch
                    if folder is not None:
                        save_method(folder.path / "best", method, cfg, image_shape, epoch,
                                    metrics, started_from=start.started_from)  # fmt: skip
                if folder is not None:
                    log.write(epoch, metrics)
                    state = training_state(
                        epoch, metrics["seconds"], optimizer, scheduler, best_acc=best_acc,
                        best_epoch=best_epoch, scaler=precision.state_dict(),
                        sampler=_sampler_state(sampler, cfg),
                    )  # fmt: skip
                    save_method(folder.last, method, cfg, image_shape, epoch, metrics, state,
                                start.started_from)  # fmt: skip
                bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", best_val=f"{best_acc:.2f}")
    finally:
        torch.set_num_threads(threads_before)
    if log is not None:
        log.close()
    seconds = world.max(time.perf_counter() - started)
    return TrainResult(best_acc, best_epoch, tc.epochs - start.epoch, seconds, tc.epochs,
                       start.seconds_before + seconds)  # fmt: skip


def _sampler_state(sampler: EpisodeSampler, cfg: ExperimentConfig) -> torch.Tensor | None:
    """The generator state a resume needs: the sequential stream's; the keyed one has none."""
    return None if cfg.train.task_stream == "keyed" else sampler.generator.get_state()


def _next_batch(
    sampler: EpisodeSampler, cfg: ExperimentConfig, world: World, step: int,
    device: torch.device,
) -> TaskBatch:  # fmt: skip
    """This rank's tasks of training step ``step`` on ``device`` (pinned for a CUDA copy that
    overlaps the computation)."""
    tc = cfg.train
    if tc.task_stream == "keyed":
        batch = sampler.sample_keyed(step, world.share(tc.meta_batch))
    else:
        batch = sampler.sample(tc.meta_batch)
    if device.type == "cuda":
        batch = batch.pin_memory()
    return batch.to(device)


def _check_finite(
    loss: float, epoch: int, step: int | None,
    scheduler: torch.optim.lr_scheduler.LRScheduler, folder: RunFolder | None,
) -> None:  # fmt: skip
    """Stop the run at a non-finite loss, saying how to go on (``last`` is the epoch before)."""
    if math.isfinite(loss):
        return
    where = f"at epoch {epoch}, step {step}" if step is not None else f"in epoch {epoch}"
    last = folder.last if folder is not None else "the run folder's last/"
    raise TrainingError(
        f"the training loss became {loss} {where}. Lower train.lr (now "
        f"{scheduler.get_last_lr()[0]:g}) and resume from the last good checkpoint in {last} "
        f"with --resume."
    )
