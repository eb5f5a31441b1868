"""Typed configuration of supervised classification runs (``hypermaml classify``).

The HyperResNets paper trains plain and hyper residual networks as ordinary image classifiers
(SGD with momentum, a step schedule, crop-and-flip augmentation). The config is stored inside
every checkpoint, like the few-shot one, so a checkpoint rebuilds its network by itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import RootConfig, bounded, checked, count, load_typed, positive
from ..engine.device import device_name_problem
from ..models.config import NetworkConfig


@dataclass
class ClassifyDataConfig:
    dataset: Literal[
        "fashion_mnist", "cifar10", "cifar100", "omniglot", "cross_char", "cub", "mini_imagenet",
        "fc100", "cifar_fs",
    ] = "fashion_mnist"  # fmt: skip
    """omniglot, cross_char, cub, mini_imagenet, fc100 and cifar_fs: the training classes of
    those few-shot datasets, for pre-training an encoder (``hypermaml train --init RUN/final``)."""
    train_subset: int | None = count(None)
    """Train on this many training images (a class-balanced sample drawn from ``run.seed``)
    instead of all of them: equal, smaller budgets for a grid of runs on a small machine."""
    augment: bool = True
    """Random crop (zero padding) and horizontal flip of every training image."""


@dataclass
class ClassifyOptimConfig:
    epochs: int = count(200)
    batch_size: int = count(128)
    lr: float = positive(0.1)
    momentum: float = bounded(0.9, low=0)
    nesterov: bool = False
    milestones: list[int] = bounded([60, 120, 160], low=1)
    """Epochs after which the learning rate is multiplied by ``gamma``."""
    gamma: float = positive(0.2)
    weight_decay: float = bounded(5e-4, low=0)
    """On plain parameters (every parameter of a plain network)."""
    hyper_reg: float = bounded(6.25e-5, low=0)
    """Coefficient of the squared L2 norm of the generated weights, in place of weight decay on
    embeddings and hypernetworks (0 turns it off)."""
    hyper_weight_decay: float = bounded(0.0, low=0)
    """Weight decay on embeddings and hypernetworks: the conventional regulariser the
    generated-weight penalty replaces (0 by design; set it with ``hyper_reg: 0`` to compare)."""


@dataclass
class SWAConfig:
    start_epoch: int | None = count(None, low=0)
    """Average the weights (embeddings and hypernetworks, never the generated weights) of every
    epoch from this one on, at the constant learning rate ``lr``; None: no SWA."""
    lr: float = positive(0.01)


@dataclass
class ClassifyRunConfig:
    seed: int = 0
    device: str = checked("auto", device_name_problem)
    threads: int | None = count(None)
    """CPU threads (default: PyTorch's count)."""
    eval_every: int = count(1)
    """Score the test set every this many epochs (for the curves; nothing is selected on it)."""
    deterministic: bool = True
    """Pin the convolution kernels (no timing), so that the same config, machine and thread count
    give bit-identical weights and a resumed run continues bit-identically; False lets the engine
    time kernels and take the fastest (faster on some shapes, not reproducible)."""


@dataclass
class ClassifyConfig(RootConfig):
    data: ClassifyDataConfig = field(default_factory=ClassifyDataConfig)
    model: NetworkConfig = field(default_factory=NetworkConfig)
    optim: ClassifyOptimConfig = field(default_factory=ClassifyOptimConfig)
    swa: SWAConfig = field(default_factory=SWAConfig)
    run: ClassifyRunConfig = field(default_factory=ClassifyRunConfig)


def load_classify_config(
    path: str | Path | None, overrides: list[str] | None = None
) -> ClassifyConfig:
    """Read a classification YAML config and apply ``--set key=value`` overrides."""
    return load_typed(ClassifyConfig, path, overrides)
