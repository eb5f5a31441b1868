"""Few-shot checkpoints: a method written with its config, and rebuilt from it.

The folder format is ``hypermaml/checkpoint.py``'s; ``meta`` adds the method's name, the image
shape (C, H, W) it was built for, the epoch and validation metrics, and, for a run started with
``--init``, the lineage of the stages before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from ..checkpoint import load_weights_into, read_meta, stored_config, write_checkpoint
from ..config import ExperimentConfig
from ..data.preprocess import Preprocess
from ..errors import CheckpointError
from .base import Method
from .build import build_method


@dataclass
class FewShotCheckpoint:
    """A loaded few-shot checkpoint: the method (weights in place), its config and metadata."""

    method: Method
    config: ExperimentConfig
    meta: dict[str, Any]
    path: Path
    kind: Literal["few_shot"] = "few_shot"

    @property
    def model(self) -> Method:
        """The method (the name every loaded checkpoint shares)."""
        return self.method

    @property
    def preprocess(self) -> Preprocess:
        """How an image becomes the model's input (``data/preprocess.py``): as recorded when
        the checkpoint was written, or (written before that) as its dataset fixes it."""
        recorded = self.meta.get("preprocess")
        if recorded is not None:
            return Preprocess.from_dict(recorded)
        return preprocess_for(self.config, self.meta["image_shape"])


def preprocess_for(config: ExperimentConfig, image_shape: Sequence[int]) -> Preprocess:
    """The input transform of a model trained with ``config`` on images of ``image_shape``."""
    data = config.data
    ratio = data.folder.resize_ratio if data.dataset == "folder" else 8 / 7
    return Preprocess.for_dataset(data.dataset, image_shape, ratio)


def save_method(
    path: Path,
    method: Method,
    config: ExperimentConfig,
    image_shape: tuple[int, int, int],
    epoch: int,
    metrics: dict[str, float],
    train_state: dict[str, Any] | None = None,
    started_from: dict[str, Any] | None = None,
) -> None:
    """Write a checkpoint folder at ``path`` (replacing an older one only once complete).

    ``started_from``: the lineage of a run started with ``--init`` (``checkpoint.init_lineage``),
    stored so that a checkpoint of a later training stage names every stage that led to it."""
    preprocess = preprocess_for(config, image_shape)
    meta = {"method": config.method.name, "image_shape": list(image_shape), "epoch": epoch,
            "metrics": metrics, "config": config.to_dict(),
            "preprocess": preprocess.to_dict()}  # fmt: skip
    if started_from is not None:
        meta["started_from"] = started_from
    write_checkpoint(path, method.state_dict(), meta, train_state)


def _read(path: str | Path, expect_method: str | None) -> tuple[Path, dict[str, Any]]:
    """The folder and metadata of a few-shot checkpoint, of ``expect_method`` when given."""
    path, meta = read_meta(path, expect="few_shot")
    if expect_method is not None and meta["method"] != expect_method:
        raise CheckpointError(
            f"{path} holds a {meta['method']} model, not a {expect_method} one; "
            f"pass a {expect_method} checkpoint or change the method in the config"
        )
    return path, meta


def load_weights(method: Method, path: str | Path, expect_method: str | None = None) -> None:
    """Load the weights of the few-shot checkpoint at ``path`` into ``method``, which must have
    the same parameters (a later training stage, a resumed run)."""
    path, meta = _read(path, expect_method)
    load_weights_into(method, path, meta, f"{meta['method']} model", method.legacy_keys)


def load_method(
    path: str | Path, device: torch.device | str = "cpu", expect_method: str | None = None
) -> FewShotCheckpoint:
    """Rebuild the method stored at ``path`` from its own config and load its weights; the
    method is returned in eval mode (test-time adaptation)."""
    path, meta = _read(path, expect_method)
    config = stored_config(path, meta, ExperimentConfig)
    method = build_method(config, tuple(meta["image_shape"]))
    load_weights_into(method, path, meta, f"{meta['method']} model", method.legacy_keys)
    return FewShotCheckpoint(method.to(device).eval(), config, meta, path)
