"""Checkpoints: a folder with the weights (safetensors) and a JSON file with the full config.

``RUN/best`` and ``RUN/last`` are such folders; ``last`` also holds ``train_state.pt`` (optimiser,
scheduler and random states) so that training resumes exactly. A folder is written beside its
final place and renamed into it, so an interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch

from .. import __version__
from ..config import ConfigError, ExperimentConfig
from ..methods import Method, build_method

FORMAT = "hypermaml-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "checkpoint.json"
TRAIN_STATE = "train_state.pt"
CLASSIFIER = "classifier"
"""The ``method`` of checkpoints written by ``hypermaml classify``."""


class CheckpointError(RuntimeError):
    """A path is not a readable hypermaml checkpoint, or does not fit the model asked for."""


@dataclass
class Checkpoint:
    method: Method
    config: ExperimentConfig
    meta: dict[str, Any]
    path: Path


def library_versions() -> dict[str, str]:
    return {
        "hypermaml": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(
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

    ``started_from``: the lineage of a run started with ``--init`` (``init_lineage``), stored
    so that a checkpoint of a later training stage names every stage that led to it."""
    meta = {"method": config.method.name, "image_shape": list(image_shape), "epoch": epoch,
            "metrics": metrics, "config": config.to_dict()}  # fmt: skip
    if started_from is not None:
        meta["started_from"] = started_from
    write_checkpoint(path, method.state_dict(), meta, train_state)


def init_lineage(path: str | Path) -> dict[str, Any]:
    """What a run started with ``--init path`` records of its start: the folder as given, the
    method, epoch and validation metrics of that checkpoint, its full config, and in turn its
    own ``started_from`` (so a chain of training stages is stored whole)."""
    resolved, meta = read_meta(path)
    lineage = {"path": str(path), "method": meta["method"], "epoch": meta.get("epoch"),
               "metrics": meta.get("metrics", {}), "config": meta["config"]}  # fmt: skip
    if "started_from" in meta:
        lineage["started_from"] = meta["started_from"]
    return lineage


def write_checkpoint(
    path: Path,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    train_state: dict[str, Any] | None = None,
) -> None:
    """Write ``state`` (safetensors), ``meta`` plus the format tag and library versions (JSON)
    and ``train_state`` into a folder beside ``path``, then rename it into place: an interrupted
    save leaves the previous checkpoint whole (as ``path`` or ``path.old``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    safetensors.torch.save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "versions": library_versions()}  # fmt: skip
    (tmp / META).write_text(json.dumps(meta, indent=2))
    if train_state is not None:
        torch.save(train_state, tmp / TRAIN_STATE)
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``path/model.safetensors``, or a CheckpointError naming the file."""
    try:
        return safetensors.torch.load_file(str(path / WEIGHTS))
    except Exception as exc:
        raise CheckpointError(
            f"{path / WEIGHTS} is unreadable ({exc}); the checkpoint is corrupt"
        ) from exc


def _resolve(path: Path) -> Path:
    """A checkpoint folder; a run folder resolves to its ``best`` checkpoint."""
    if (path / META).is_file():
        return path
    for candidate in (path / "best", path.with_name(path.name + ".old")):
        if (candidate / META).is_file():
            return candidate
    raise CheckpointError(
        f"{path} is not a hypermaml checkpoint: it has no {META}. Pass a checkpoint folder "
        f"(RUN/best or RUN/last, or one under checkpoints/)."
    )


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = _resolve(Path(path))
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path / META} is unreadable ({exc}); the checkpoint is corrupt"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META} is not a hypermaml checkpoint (no format tag)")
    missing = [key for key in ("method", "image_shape", "config") if key not in meta]
    if missing:
        raise CheckpointError(f"{path / META} lacks {missing}; the checkpoint is corrupt")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer hypermaml (format {meta['format_version']}); upgrade"
        )
    return path, meta


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu", expect_method: str | None = None
) -> Checkpoint:
    """Rebuild the method stored at ``path`` from its own config and load its weights."""
    path, meta = read_meta(path)
    if expect_method is not None and meta["method"] != expect_method:
        raise CheckpointError(
            f"{path} holds a {meta['method']} model, not a {expect_method} one; "
            f"pass a {expect_method} checkpoint or change the method in the config"
        )
    if meta["method"] == CLASSIFIER:
        raise CheckpointError(
            f"{path} holds a supervised classifier (hypermaml classify), not a few-shot method; "
            f"pass a checkpoint written by hypermaml train"
        )
    try:
        config = ExperimentConfig.from_dict(meta["config"])
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: its stored config is invalid ({exc})") from exc
    channels, size, _ = meta["image_shape"]
    method = build_method(config, channels, size)
    load_weights_into(method, path, f"{meta['method']} model")
    return Checkpoint(method.to(device), config, meta, path)


def load_weights_into(module: torch.nn.Module, path: Path, what: str) -> None:
    """Load ``path/model.safetensors`` into ``module`` (the ``what`` its config describes),
    refusing, with the names, weights that belong to another model."""
    state = read_weights(path)
    expected = set(module.state_dict())
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        raise CheckpointError(
            f"{path / WEIGHTS} does not fit the {what} of its config (missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}): the weights belong "
            f"to another model"
        )
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path / WEIGHTS} does not fit its config: {exc}") from exc


def load_train_state(path: Path) -> dict[str, Any]:
    file = Path(path) / TRAIN_STATE
    if not file.is_file():
        raise CheckpointError(f"{path} holds no training state ({TRAIN_STATE}); cannot resume")
    return torch.load(file, weights_only=False)
