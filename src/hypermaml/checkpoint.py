"""The on-disk format of every hypermaml artefact: a folder with weights and a JSON description.

A checkpoint folder holds ``model.safetensors`` (the weights) and ``checkpoint.json`` (a format
tag, the kind of model, the full config it was built from, the epoch, metrics and library
versions); a run's ``last`` folder also holds ``train_state.pt`` (optimiser, schedule and random
states) so that training resumes exactly. Two kinds exist (``kind``): few-shot methods written
by ``hypermaml train`` and supervised classifiers written by ``hypermaml classify``. Building the
model a checkpoint describes is the job of ``methods.checkpoint`` and ``classify.checkpoint``.

A folder is written beside its final place and renamed into it, so an interrupted save never
destroys the previous checkpoint.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import safetensors
import safetensors.torch
import torch

from ._version import __version__
from .errors import CheckpointError, ConfigError

FORMAT = "hypermaml-checkpoint"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
META = "checkpoint.json"
TRAIN_STATE = "train_state.pt"
CLASSIFIER = "classifier"
"""The ``method`` recorded by checkpoints of ``hypermaml classify``."""

Kind = Literal["few_shot", "classifier"]
_WRITERS: dict[Kind, tuple[str, str]] = {
    "few_shot": ("a few-shot method", "hypermaml train"),
    "classifier": ("a classifier", "hypermaml classify"),
}
"""What each kind holds, and the command that writes it."""


def kind(meta: Mapping[str, Any]) -> Kind:
    """``classifier`` for a supervised network, ``few_shot`` for a method (HyperMAML, MAML, ...)."""
    return "classifier" if meta["method"] == CLASSIFIER else "few_shot"


def library_versions() -> dict[str, str]:
    return {
        "hypermaml": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
    }


def write_checkpoint(
    path: str | Path,
    state: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    train_state: Mapping[str, Any] | None = None,
) -> None:
    """Write ``state`` (safetensors), ``meta`` plus the format tag and library versions (JSON)
    and ``train_state`` into a folder beside ``path``, then rename it into place: an interrupted
    save leaves the previous checkpoint whole (as ``path`` or ``path.old``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    old = path.with_name(path.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    safetensors.torch.save_file(tensors, str(tmp / WEIGHTS), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "versions": library_versions()}  # fmt: skip
    (tmp / META).write_text(json.dumps(meta, indent=2))
    if train_state is not None:
        torch.save(dict(train_state), tmp / TRAIN_STATE)
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
    """A checkpoint folder; a run folder resolves to its ``best`` (few-shot) or ``final``
    (classifier) checkpoint, a folder whose save was interrupted to its ``.old`` copy."""
    if (path / META).is_file():
        return path
    for candidate in (path / "best", path / "final", path.with_name(path.name + ".old")):
        if (candidate / META).is_file():
            return candidate
    raise CheckpointError(
        f"{path} is not a hypermaml checkpoint: it has no {META}. Pass a checkpoint folder "
        f"(RUN/best, RUN/last, RUN/final, or one under checkpoints/)."
    )


def read_meta(path: str | Path, expect: Kind | None = None) -> tuple[Path, dict[str, Any]]:
    """(the checkpoint folder ``path`` resolves to, its checked ``checkpoint.json``), refused
    unless it is of kind ``expect`` when that is given."""
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
    if expect is not None and kind(meta) != expect:
        (held, written_by), (wanted, writer) = _WRITERS[kind(meta)], _WRITERS[expect]
        raise CheckpointError(
            f"{path} holds {held} ({written_by}), not {wanted}; pass a checkpoint written by "
            f"{writer}"
        )
    return path, meta


def stored_config(path: Path, meta: dict[str, Any], config_class: type) -> Any:
    """The typed config a checkpoint stores (``config_class.from_dict``), or a CheckpointError."""
    try:
        return config_class.from_dict(meta["config"])
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: its stored config is invalid ({exc})") from exc


def checkpoint_kind(path: str | Path) -> Kind:
    """The ``kind`` of the checkpoint at ``path``."""
    return kind(read_meta(path)[1])


def load_weights_into(
    module: torch.nn.Module,
    path: Path,
    what: str,
    rename: Mapping[str, str] | None = None,
) -> None:
    """Load ``path/model.safetensors`` into ``module`` (the ``what`` its config describes),
    refusing, with the names, weights that belong to another model. ``rename``: old key
    prefix -> current one, for files written before a module was renamed."""
    state = read_weights(path)
    for old, new in (rename or {}).items():
        state = {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in state.items()}
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
    """The ``train_state.pt`` of a run's ``last`` checkpoint (written by this library only)."""
    file = Path(path) / TRAIN_STATE
    if not file.is_file():
        raise CheckpointError(f"{path} holds no training state ({TRAIN_STATE}); cannot resume")
    return torch.load(file, weights_only=False)


def init_lineage(path: str | Path) -> dict[str, Any]:
    """What a run started with ``--init path`` records of its start: the folder as given, the
    method, epoch and validation metrics of that checkpoint, its full config, and in turn its
    own ``started_from`` (so a chain of training stages is stored whole)."""
    _, meta = read_meta(path)
    lineage = {"path": str(path), "method": meta["method"], "epoch": meta.get("epoch"),
               "metrics": meta.get("metrics", {}), "config": meta["config"]}  # fmt: skip
    if "started_from" in meta:
        lineage["started_from"] = meta["started_from"]
    return lineage
