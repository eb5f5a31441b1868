"""The episodic meta-training loop: epochs of tasks, meta-batches, validation, checkpoints."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import checkpoint_kind, init_lineage
from ..config import ExperimentConfig
from ..data import ClassImages, EpisodeSampler, load_split
from ..data.episodes import Augmentation, chain
from ..data.framing import FrameAugment
from ..data.strokes import StrokeAugment
from ..engine import kernels
from ..engine.device import pick_device
from ..engine.parallel import TaskParallel
from ..errors import TrainingError
from ..evaluation import evaluate
from ..extras import require
from ..methods import Method, build_method, load_weights, save_method
from ..runs import RunFolder, restore_training_state, training_state
from ..runs.logs import FIELDS
from .pretrained import load_pretrained_encoder
from .step import meta_step

VAL_SEED = 1_000_003
"""Validation tasks are the same in every epoch and every run (never the test seed)."""
FREE_FIELDS = {
    "train": ("epochs", "device", "threads", "tasks_per_pass", "val_every", "deterministic")
}
"""Fields a resumed run may change: its length, the hardware and how a meta-batch is split over
it, how often it validates and whether its kernels are pinned."""


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
    """
    with RunFolder.open(run_dir, "train", resume, force) as folder:
        with kernels.deterministic(cfg.train.deterministic):
            return _train(cfg, folder, data_root, progress, tensorboard, init)


def _train(
    cfg: ExperimentConfig,
    folder: RunFolder,
    data_root: str | Path | None,
    progress: bool,
    tensorboard: bool,
    init: str | Path | None,
) -> TrainResult:
    tc, dc = cfg.train, cfg.data
    device = pick_device(tc.device)
    train_data = load_split(dc.dataset, "train", data_root, **dc.load_options())
    val_data = load_split(dc.dataset, "val", data_root, **dc.load_options())
    image_shape = train_data.image_shape
    sampler = training_sampler(cfg, train_data)
    EpisodeSampler(val_data, dc.test_shape)  # fail early on bad N/K/Q

    torch.manual_seed(tc.seed)
    method = build_method(cfg, image_shape).to(device)
    optimizer = torch.optim.Adam(method.parameters(), lr=tc.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, tc.milestones, gamma=tc.gamma)
    start_epoch, best_acc, best_epoch = 0, -math.inf, -1
    seconds_before = 0.0  # wall time of earlier sessions of a resumed run
    resumed = folder.resume(cfg, FREE_FIELDS, "few_shot", tc.epochs)
    started_from = None
    if resumed is not None:
        started_from = resumed.meta.get("started_from")
        _check_same_start(init, started_from, folder)
        load_weights(method, resumed.path, expect_method=cfg.method.name)
        restore_training_state(resumed.state, optimizer, scheduler)
        sampler.generator.set_state(resumed.state["sampler"])
        start_epoch, seconds_before = resumed.start_epoch, resumed.seconds
        best_acc, best_epoch = resumed.state["best_acc"], resumed.state["best_epoch"]
    elif init is not None:
        started_from = init_lineage(init)
        _start_from(method, init, cfg)
    log = folder.open_log(FIELDS, tensorboard, resumed)

    steps = tc.episodes_per_epoch // tc.meta_batch  # TrainConfig checks it is >= 1
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
                    loss, accuracy = meta_step(
                        method, optimizer, batch, parallel, tc.tasks_per_pass
                    )
                    if not math.isfinite(loss):
                        raise TrainingError(
                            f"the training loss became {loss} at epoch {epoch}, step {step}. "
                            f"Lower train.lr (now {scheduler.get_last_lr()[0]:g}) and resume "
                            f"from the last good checkpoint in {folder.last} with --resume."
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
                    val = evaluate(method, val_data, dc.test_shape, tc.val_tasks, seed=VAL_SEED,
                                   parallel=parallel)  # fmt: skip
                    metrics["val_accuracy"], metrics["val_ci95"] = val.accuracy, val.ci95
                metrics["seconds"] = seconds_before + time.perf_counter() - started
                log.write(epoch, metrics)
                if metrics.get("val_accuracy", -math.inf) > best_acc:
                    best_acc, best_epoch = metrics["val_accuracy"], epoch
                    save_method(folder.path / "best", method, cfg, image_shape, epoch, metrics,
                                started_from=started_from)  # fmt: skip
                state = training_state(
                    epoch, metrics["seconds"], optimizer, scheduler, best_acc=best_acc,
                    best_epoch=best_epoch, sampler=sampler.generator.get_state(),
                )  # fmt: skip
                save_method(folder.last, method, cfg, image_shape, epoch, metrics, state,
                            started_from)  # fmt: skip
                bar.set_postfix(loss=f"{metrics['train_loss']:.3f}", best_val=f"{best_acc:.2f}")
    finally:
        torch.set_num_threads(threads_before)
    log.close()
    seconds = time.perf_counter() - started
    return TrainResult(
        best_acc, best_epoch, tc.epochs - start_epoch, seconds, tc.epochs, seconds_before + seconds
    )


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
