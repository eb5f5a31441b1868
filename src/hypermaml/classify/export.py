"""``hypermaml export``: a trained HyperResNet written as the plain ResNet computing the same."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import check_replaceable, write_checkpoint
from ..data.classification import load_classification
from ..models.export import count_parameters, to_plain
from .checkpoint import load_classifier


@dataclass
class ExportReport:
    arch: str
    train_params: int
    test_params: int
    max_abs_diff: float
    """Largest logit difference between the hyper and the plain network on ``compared`` images."""
    compared: int


@torch.no_grad()
def export_checkpoint(
    path: str | Path,
    out: str | Path,
    data_root: str | Path | None = None,
    compare: int = 500,
    force: bool = False,
) -> ExportReport:
    """Write the plain network of a HyperResNet checkpoint to ``out``; report the parameter
    counts and the largest logit difference between the two on ``compare`` test images.
    ``out`` must be new (or empty), or an earlier export when ``force``."""
    check_replaceable(Path(out), force, "exported_from", "export")
    ckpt = load_classifier(path)
    cfg, meta = ckpt.config, ckpt.meta
    plain = to_plain(ckpt.network).eval()
    test = load_classification(cfg.data.dataset, "test", data_root)
    mean, std = ckpt.normalisation
    x = (test.images[:compare].float() / 255.0 - mean[:, None, None]) / std[:, None, None]
    diff = (ckpt.network(x) - plain(x)).abs().max().item()
    plain_cfg = type(cfg).from_dict(cfg.to_dict())
    plain_cfg.model.hyper, plain_cfg.model.hyper_bias, plain_cfg.model.frozen_seed = (
        "none", False, None,
    )  # fmt: skip
    train_params, test_params = count_parameters(ckpt.network)
    kept = {k: v for k, v in meta.items() if k not in ("format", "format_version", "versions")}
    plain_meta = {**kept, "config": plain_cfg.to_dict(), "exported_from": str(path),
                  "parameters": {"train": test_params, "test": test_params}}  # fmt: skip
    write_checkpoint(Path(out), plain.state_dict(), plain_meta)
    return ExportReport(cfg.model.arch, train_params, test_params, diff, len(x))
