"""Classifier checkpoints of ``hypermaml classify``: the network written with its config, and
rebuilt from it.

The folder format is ``hypermaml/checkpoint.py``'s; ``meta`` adds the number of classes, the
image shape, the parameter counts (trained and after export) and the per-channel normalisation
the network was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..checkpoint import CLASSIFIER, load_weights_into, read_meta, stored_config
from ..models.build import build_network
from ..models.export import count_parameters
from .config import ClassifyConfig


@dataclass
class ClassifierCheckpoint:
    """A loaded classifier checkpoint: the network (eval mode), its config and metadata."""

    network: nn.Module
    config: ClassifyConfig
    meta: dict[str, Any]
    path: Path
    kind: Literal["classifier"] = "classifier"

    @property
    def model(self) -> nn.Module:
        """The network (the name every loaded checkpoint shares)."""
        return self.network

    @property
    def normalisation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [C], std [C]) that images in [0, 1] are normalised with before the network."""
        norm = self.meta["normalisation"]
        return torch.tensor(norm["mean"]), torch.tensor(norm["std"])


def classifier_meta(
    cfg: ClassifyConfig,
    network: nn.Module,
    image_shape: tuple[int, int, int],
    num_classes: int,
    epoch: int,
    metrics: dict[str, Any],
    mean: torch.Tensor,
    std: torch.Tensor,
) -> dict[str, Any]:
    """The ``checkpoint.json`` entries of a classifier after ``epoch``."""
    train_params, test_params = count_parameters(network)
    return {"method": CLASSIFIER, "image_shape": list(image_shape), "num_classes": num_classes,
            "epoch": epoch, "metrics": metrics,
            "parameters": {"train": train_params, "test": test_params},
            "normalisation": {"mean": mean.tolist(), "std": std.tolist()},
            "config": cfg.to_dict()}  # fmt: skip


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> ClassifierCheckpoint:
    """The classifier stored at ``path``, rebuilt from its own config, in eval mode."""
    path, meta = read_meta(path, expect="classifier")
    cfg = stored_config(path, meta, ClassifyConfig)
    channels, size, _ = meta["image_shape"]
    network = build_network(cfg.model, channels, meta["num_classes"], size)
    load_weights_into(network, path, meta, f"{cfg.model.arch} (hyper {cfg.model.hyper})")
    return ClassifierCheckpoint(network.to(device).eval(), cfg, meta, path)
