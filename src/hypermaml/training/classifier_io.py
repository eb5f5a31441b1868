"""Classifier checkpoints of ``hypermaml classify``: load one, score it, export it plain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..classify_config import ClassifyConfig
from ..data.classification import load_classification
from ..models.export import count_parameters, to_plain
from .checkpoint import CLASSIFIER, CheckpointError, load_weights_into, read_meta, write_checkpoint
from .classify import build_network, test_accuracy


def load_classifier(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, ClassifyConfig, dict[str, Any]]:
    """(network in eval mode, its config, the checkpoint's metadata) of a classifier folder."""
    path, meta = read_meta(path)
    if meta["method"] != CLASSIFIER:
        raise CheckpointError(
            f"{path} holds a few-shot {meta['method']} model, not a classifier; pass a folder "
            f"written by hypermaml classify (RUN/final)"
        )
    cfg = ClassifyConfig.from_dict(meta["config"])
    channels, size, _ = meta["image_shape"]
    model = build_network(cfg, channels, meta["num_classes"], size)
    load_weights_into(model, path, f"{cfg.model.arch} (hyper {cfg.model.hyper})")
    return model.to(device).eval(), cfg, meta


def _normalisation(meta: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    norm = meta["normalisation"]
    return torch.tensor(norm["mean"]), torch.tensor(norm["std"])


def score_classifier(
    path: str | Path, data_root: str | Path | None = None, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Test-set accuracy (percent) of a classifier checkpoint, with what it was."""
    model, cfg, meta = load_classifier(path, device)
    test = load_classification(cfg.data.dataset, "test", data_root)
    mean, std = _normalisation(meta)
    accuracy = test_accuracy(model, test, mean, std, torch.device(device))
    return {"accuracy": accuracy, "n_images": len(test.labels), "dataset": cfg.data.dataset,
            "arch": cfg.model.arch, "hyper": cfg.model.hyper, **meta["parameters"]}  # fmt: skip


@torch.no_grad()
def export_checkpoint(
    path: str | Path, out: str | Path, data_root: str | Path | None = None, compare: int = 500
) -> dict[str, Any]:
    """Write the plain network of a HyperResNet checkpoint to ``out``; report the parameter
    counts and the largest logit difference between the two on ``compare`` test images."""
    model, cfg, meta = load_classifier(path)
    plain = to_plain(model).eval()
    test = load_classification(cfg.data.dataset, "test", data_root)
    mean, std = _normalisation(meta)
    x = (test.images[:compare].float() / 255.0 - mean[:, None, None]) / std[:, None, None]
    diff = (model(x) - plain(x)).abs().max().item()
    plain_cfg = ClassifyConfig.from_dict(cfg.to_dict())
    plain_cfg.model.hyper, plain_cfg.model.hyper_bias, plain_cfg.model.frozen_seed = (
        "none", False, None,
    )  # fmt: skip
    train_params, test_params = count_parameters(model)
    plain_meta = {**{k: v for k, v in meta.items() if k not in ("format", "format_version",
                                                               "versions")},
                  "config": plain_cfg.to_dict(), "exported_from": str(path),
                  "parameters": {"train": test_params, "test": test_params}}  # fmt: skip
    write_checkpoint(Path(out), plain.state_dict(), plain_meta)
    return {"arch": cfg.model.arch, "train_params": train_params, "test_params": test_params,
            "max_abs_diff": diff, "compared": len(x)}  # fmt: skip
