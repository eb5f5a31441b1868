"""Supervised training of plain and hyper residual networks (``hypermaml classify``).

SGD with momentum and a step schedule, as in the HyperResNets paper: ordinary weight decay on
plain parameters and, for hyper networks, a penalty on the squared norm of the *generated*
weights in place of weight decay on embeddings and hypernetworks. Optional SWA averages the
parameters (embeddings and hypernetworks, never the generated weights) of the last epochs and
recomputes the BatchNorm statistics of the average. ``RUN/last`` holds everything a resumed run
needs; ``RUN/final`` is the trained network with its test accuracy.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ..checkpoint import write_checkpoint
from ..data.augment import batches, channel_stats
from ..data.classification import LabelledImages, load_classification
from ..engine import kernels
from ..engine.device import pick_device
from ..engine.distributed import World, current_world, world_device
from ..errors import ConfigError, TrainingError
from ..models.build import build_network
from ..models.export import count_parameters
from ..models.hyperconv import generate_once, generated_weight_penalty, parameter_groups
from ..runs import RunFolder, restore_training_state, training_state
from .checkpoint import classifier_meta
from .config import ClassifyConfig
from .score import EVAL_BATCH, FEW_SHOT_PRETRAINING, accuracy

FIELDS = ("epoch", "train_loss", "train_accuracy", "penalty", "test_accuracy", "lr", "seconds")
FREE_FIELDS = {"optim": ("epochs",), "run": ("device", "threads", "eval_every", "deterministic")}
"""Fields a resumed run may change: its length, the hardware and whether its kernels are pinned."""


@dataclass
class ClassifyResult:
    test_accuracy: float
    """Percent, of the final network (the SWA average when SWA ran)."""
    epochs_run: int
    seconds: float
    train_params: int
    test_params: int
    network: str = ""
    """The architecture, its hyper mode and SWA, in words."""

    def describe(self, out: str | Path) -> str:
        """The one line ``hypermaml classify`` prints."""
        return (
            f"test accuracy {self.test_accuracy:.2f}% ({self.network}); {self.train_params:,} "
            f"trained parameters, {self.test_params:,} after export; {self.epochs_run} epochs "
            f"in {self.seconds:.0f} s; the network is in {Path(out) / 'final'}"
        )


def class_balanced_subset(data: LabelledImages, n: int, seed: int) -> LabelledImages:
    """``n`` images, the same number of each class (give or take one), drawn from ``seed``."""
    classes = int(data.labels.max()) + 1
    if not 0 < n <= len(data.labels):
        raise ConfigError(f"data.train_subset={n}: choose 1..{len(data.labels)} training images")
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(classes):
        idx = (data.labels == c).nonzero().flatten()
        take = n // classes + (1 if c < n % classes else 0)
        keep.append(idx[torch.randperm(len(idx), generator=g)[:take]])
    keep = torch.cat(keep).sort().values
    return LabelledImages(data.name, data.split, data.images[keep], data.labels[keep],
                          data.class_names)  # fmt: skip


def _channel_stats(data: LabelledImages) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) per channel of the training images. Few-shot training classes are fed as the
    few-shot methods feed them (scaled to [0, 1], not normalised), so a pre-trained encoder sees
    at meta-training what it saw in pre-training (zero padding included)."""
    if data.name in FEW_SHOT_PRETRAINING:
        channels = data.images.shape[1]
        return torch.zeros(channels), torch.ones(channels)
    mean, std = channel_stats(data.images)
    return torch.tensor(mean), torch.tensor(std)


def _optimizer(model: nn.Module, cfg: ClassifyConfig) -> torch.optim.SGD:
    o = cfg.optim
    hyper, plain = parameter_groups(model)
    groups = [{"params": plain, "weight_decay": o.weight_decay}]
    if hyper:
        groups.append({"params": hyper, "weight_decay": o.hyper_weight_decay})
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov)


def train_classifier(
    cfg: ClassifyConfig,
    run_dir: str | Path,
    data_root: str | Path | None = None,
    resume: bool | None = False,
    progress: bool = True,
    tensorboard: bool = True,
    force: bool = False,
) -> ClassifyResult:
    """Train the network of ``cfg``; writes ``run_dir/{last,final}``, metrics.csv and tb/.
    ``resume`` and ``force`` as for ``training.train``.

    Launched by torchrun, each process trains on its share of every batch and the gradients
    are summed over the processes (the batches, their order and augmentation are the same for
    any number). BatchNorm normalises over each process's share, as under PyTorch's
    ``DistributedDataParallel`` without SyncBatchNorm, so the run is not the single-process run;
    the running statistics are averaged over the processes after every epoch. A last batch
    smaller than the number of processes is skipped. The main process alone reads and writes
    ``run_dir`` and scores the test images."""
    world = current_world()
    with contextlib.ExitStack() as stack:
        folder = world.on_main(
            lambda: stack.enter_context(RunFolder.open(run_dir, "classify", resume, force))
        )
        with kernels.deterministic(cfg.run.deterministic):
            return _train_classifier(cfg, folder, world, data_root, progress and world.is_main,
                                     tensorboard)  # fmt: skip


def _train_classifier(
    cfg: ClassifyConfig,
    folder: RunFolder | None,
    world: World,
    data_root: str | Path | None,
    progress: bool,
    tensorboard: bool,
) -> ClassifyResult:
    o = cfg.optim
    if cfg.swa.start_epoch is not None and not 0 <= cfg.swa.start_epoch < o.epochs:
        raise ConfigError(f"swa.start_epoch={cfg.swa.start_epoch}: choose 0..{o.epochs - 1}")
    device = pick_device(world_device(cfg.run.device, world))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    train_data = load_classification(cfg.data.dataset, "train", data_root)
    test_data = load_classification(cfg.data.dataset, "test", data_root)
    if cfg.data.train_subset is not None:
        train_data = class_balanced_subset(train_data, cfg.data.train_subset, cfg.run.seed)
    mean, std = _channel_stats(train_data)

    torch.manual_seed(cfg.run.seed)
    shape, n_classes = train_data.image_shape, len(train_data.class_names)
    model = build_network(cfg.model, shape[0], n_classes, shape[1]).to(device)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, o.milestones, gamma=o.gamma)
    swa_model = AveragedModel(model) if cfg.swa.start_epoch is not None else None

    def load() -> tuple[int, float]:
        resumed = folder.resume(cfg, FREE_FIELDS, "classifier", o.epochs)
        if resumed is None:
            return 0, 0.0
        state = resumed.state
        model.load_state_dict(state["model"])
        restore_training_state(state, optimizer, scheduler)
        if swa_model is not None and state.get("swa") is not None:
            swa_model.load_state_dict(state["swa"])
        return resumed.start_epoch, resumed.seconds

    start_epoch, seconds_before = world.broadcast_object(world.on_main(load))
    world.broadcast_state_(model, optimizer, scheduler, swa_model)
    log = folder.open_log(FIELDS, tensorboard, start_epoch) if folder else None

    def meta(network: nn.Module, epoch: int, metrics: dict) -> dict:
        return classifier_meta(cfg, network, shape, n_classes, epoch, metrics, mean, std)

    started = time.perf_counter()
    bar = tqdm(range(start_epoch, o.epochs), desc=f"{cfg.model.arch} {cfg.data.dataset}",
               disable=not progress, unit="epoch")  # fmt: skip
    for epoch in bar:
        in_swa = cfg.swa.start_epoch is not None and epoch >= cfg.swa.start_epoch
        if in_swa:
            for group in optimizer.param_groups:
                group["lr"] = cfg.swa.lr
        metrics = _train_epoch(model, optimizer, train_data, cfg, epoch, mean, std, device,
                               world)  # fmt: skip
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        if in_swa:
            swa_model.update_parameters(model)
        else:
            scheduler.step()
        final = epoch + 1 == o.epochs
        metrics["seconds"] = seconds_before + time.perf_counter() - started
        if folder is None:
            continue
        if (epoch + 1) % cfg.run.eval_every == 0 or final:
            metrics["test_accuracy"] = accuracy(model, test_data, mean, std, device)
        log.write(epoch, metrics)
        train_state = training_state(
            epoch, metrics["seconds"], optimizer, scheduler, model=model.state_dict(),
            swa=swa_model.state_dict() if swa_model is not None else None,
        )  # fmt: skip
        write_checkpoint(folder.last, model.state_dict(), meta(model, epoch, metrics), train_state)
        bar.set_postfix(loss=f"{metrics['train_loss']:.3f}",
                        test=f"{metrics.get('test_accuracy', float('nan')):.2f}")  # fmt: skip
    if folder is None:  # the main process scores and writes the network
        return ClassifyResult(math.nan, o.epochs - start_epoch, 0.0, 0, 0)
    log.close()

    net, metrics = model, {"test_accuracy": None}
    if swa_model is not None:
        net = swa_model.module
        recompute_batchnorm(net, train_data, mean, std, device)
    metrics["test_accuracy"] = accuracy(net, test_data, mean, std, device)
    metrics["swa"] = swa_model is not None
    write_checkpoint(folder.path / "final", net.state_dict(), meta(net, o.epochs - 1, metrics))
    train_params, test_params = count_parameters(net)
    network = f"{cfg.model.arch}, hyper {cfg.model.hyper}" + (", SWA" if swa_model else "")
    return ClassifyResult(metrics["test_accuracy"], o.epochs - start_epoch,
                          seconds_before + time.perf_counter() - started,
                          train_params, test_params, network)  # fmt: skip


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: LabelledImages,
                 cfg: ClassifyConfig, epoch: int, mean: torch.Tensor, std: torch.Tensor,
                 device: torch.device, world: World) -> dict[str, float]:  # fmt: skip
    """One pass over the shuffled, augmented training images; the data order and augmentation
    depend on (seed, epoch) alone, so a resumed run sees the batches of an uninterrupted one.
    On several processes each takes its share of every batch (``train_classifier``)."""
    model.train()
    generator = torch.Generator().manual_seed(cfg.run.seed * 1_000_003 + epoch)
    total_loss = total_penalty = correct = seen = 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    for x, y in batches(data, cfg.optim.batch_size, mean, std, generator=generator,
                        augment=cfg.data.augment):  # fmt: skip
        n = len(y)
        if n < world.size:
            continue  # a share for every process, or no step (the same on every process)
        rows = world.share(n)
        x, y = x[rows.start : rows.stop].to(device), y[rows.start : rows.stop].to(device)
        share = len(rows) / n
        with generate_once(model):  # the penalty reuses the forward pass's generated weights
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            penalty = generated_weight_penalty(model) if cfg.optim.hyper_reg else None
        # this process's part of the batch's loss; the penalty once over the processes
        total = loss * share
        if penalty is not None:
            total = total + cfg.optim.hyper_reg * penalty / world.size
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        no_penalty = torch.zeros((), device=device)
        stats = torch.stack([loss.detach() * share, (logits.argmax(1) == y).sum().float(),
                             penalty.detach() / world.size if penalty is not None
                             else no_penalty])  # fmt: skip
        if world.distributed:
            stats = world.sum_gradients_(params, 1.0, stats)
        batch_loss, batch_correct, batch_penalty = stats.tolist()
        if not math.isfinite(batch_loss + cfg.optim.hyper_reg * batch_penalty):
            raise TrainingError(
                f"the training loss became {batch_loss} at epoch {epoch}; lower optim.lr "
                f"(now {optimizer.param_groups[0]['lr']:g}) and resume from the last good "
                f"checkpoint with --resume"
            )
        optimizer.step()
        total_loss += batch_loss * n
        total_penalty += batch_penalty * n
        correct += batch_correct
        seen += n
    if world.distributed:  # each process's running statistics saw its shares: average them
        stats = [b for b in model.buffers() if b.is_floating_point()]
        world.all_reduce_sum_(stats)
        for b in stats:
            b.div_(world.size)
    return {"train_loss": total_loss / seen, "train_accuracy": 100.0 * correct / seen,
            "penalty": total_penalty / seen}  # fmt: skip


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, data: LabelledImages, mean: torch.Tensor,
                        std: torch.Tensor, device: torch.device) -> None:  # fmt: skip
    """Running BatchNorm statistics of ``model`` recomputed over the (unaugmented) training
    images: an SWA average's weights never produced the statistics it holds."""
    loader = (x.to(device) for x, _ in batches(data, EVAL_BATCH, mean, std, shuffle=False,
                                               augment=False))  # fmt: skip
    torch.optim.swa_utils.update_bn(loader, model)
