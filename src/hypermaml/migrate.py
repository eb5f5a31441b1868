"""``hypermaml upgrade``: checkpoints of an older format rewritten in the current one, explicitly.

A stored config must name every field, so a field added to the configs makes a new format:
checkpoints written before it lack the field. The upgrade fills only the fields ``ADDED_FIELDS``
lists for the formats since the checkpoint's, each with the value that reproduces how it was
trained (e.g. ``train.deterministic: false`` for format 1: the kernels were timed); a stored
config lacking anything else is refused, never completed from today's defaults. The weights are
not touched: their digest is verified (format 2 on) or computed (format 1) and recorded.
Format 1 also had no digests, and a run's ``last`` held a pickled ``train_state.pt``, read with
``torch.load(weights_only=True)`` (plain tensors and containers only, plus numpy's random state)
and stored as tensors plus JSON; the pickle is then removed.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from .checkpoint import FORMAT_VERSION, META, WEIGHTS, kind
from .checkpoint.format import (
    LEGACY_TRAIN_STATE,
    STATE_TENSORS,
    STATE_TREE,
    _parse_meta,
    _read_file,
    sha256,
)
from .checkpoint.state import encode
from .classify import ClassifyConfig
from .config import ExperimentConfig, FolderConfig, missing_keys
from .errors import CheckpointError
from .outputs import write_bytes_durable, write_text_atomic

ADDED_FIELDS: dict[int, dict[str, dict[str, Any]]] = {
    1: {
        "few_shot": {"data.train_stroke": 0.0, "data.train_zoom": 1.0, "model.hyper": "none",
                     "train.val_every": 1, "train.threads": None, "train.deterministic": False},
        "classifier": {"optim.hyper_weight_decay": 0.0, "run.deterministic": False},
    },
    2: {
        "few_shot": {"data.train_aug": False, "data.source": None, "data.skip_bad_images": False,
                     "data.folder": asdict(FolderConfig())},
        "classifier": {},
    },
    3: {"few_shot": {"train.tasks_per_pass": None}, "classifier": {}},
    4: {"few_shot": {"data.train_n_way": None}, "classifier": {}},
    5: {"few_shot": {"train.task_stream": "sequential", "train.precision": "fp32"},
        "classifier": {}},
}  # fmt: skip
"""Format N -> the fields added while it was current, each with the value that reproduces how
its checkpoints were trained (filled when a checkpoint of format N or older is upgraded)."""
_CONFIG_CLASSES = {"few_shot": ExperimentConfig, "classifier": ClassifyConfig}


def upgrade(path: str | Path) -> list[str]:
    """Upgrade the checkpoint folder ``path``, or every checkpoint of the run folder ``path``;
    one line per checkpoint saying what was done."""
    path = Path(path)
    if (path / META).is_file():
        folders = [path]
    else:
        folders = sorted(p.parent for p in path.glob(f"*/{META}"))
    if not folders:
        raise CheckpointError(f"{path} holds no checkpoint ({META}); nothing to upgrade")
    return [upgrade_checkpoint(folder) for folder in folders]


def upgrade_checkpoint(path: Path) -> str:
    """Rewrite the checkpoint ``path`` in the current format (a no-op on a current one)."""
    meta = _parse_meta(path)
    was = meta.get("format_version", 1)
    if was == FORMAT_VERSION:
        return f"{path}: already format {FORMAT_VERSION}"
    config, filled = _complete_config(path, meta, was)
    for name in meta.get("sha256", {}):  # a digest is carried over only once verified
        _read_file(path, name, meta)
    legacy = path / LEGACY_TRAIN_STATE
    converted = legacy.is_file()
    if converted:
        tensors, tree = encode(_read_legacy_state(legacy))
        write_bytes_durable(path / STATE_TENSORS, safetensors.torch.save(tensors))
        write_bytes_durable(path / STATE_TREE, json.dumps(tree).encode())
    names = [n for n in (WEIGHTS, STATE_TENSORS, STATE_TREE) if (path / n).is_file()]
    history = meta.get("migrated", [])
    history = [history] if isinstance(history, dict) else history
    step = {"from_format": was, "filled": filled, "date": time.strftime("%Y-%m-%d")}
    new = {**meta, "format_version": FORMAT_VERSION, "config": config,
           "sha256": {n: sha256((path / n).read_bytes()) for n in names},
           "migrated": [*history, step]}  # fmt: skip
    write_text_atomic(path / META, json.dumps(new, indent=2))
    if converted:
        legacy.unlink()
    state = ", training state converted" if converted else ""
    fields = ", ".join(f"{k}={v!r}" for k, v in filled.items()) or "none"
    return f"{path}: format {was} -> {FORMAT_VERSION}{state}; filled {fields}"


def _complete_config(
    path: Path, meta: dict[str, Any], was: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored config with the fields added since format ``was`` that it lacks filled in,
    and those fields."""
    try:
        run_kind = kind(meta)
        config = copy.deepcopy(meta["config"])
    except KeyError as exc:
        raise CheckpointError(f"{path / META} lacks {exc}; it is corrupt") from exc
    added = {k: v for n in range(was, FORMAT_VERSION) for k, v in ADDED_FIELDS[n][run_kind].items()}
    missing = missing_keys(_CONFIG_CLASSES[run_kind], config)
    unknown = [key for key in missing if key not in added]
    if unknown:
        raise CheckpointError(
            f"{path}: its stored config lacks {', '.join(unknown)}, which no format {was} "
            f"checkpoint written by hypermaml lacks; it cannot be completed safely"
        )
    for key in missing:
        section, name = key.split(".")
        config.setdefault(section, {})[name] = added[key]
    return config, {key: added[key] for key in missing}


def _read_legacy_state(file: Path) -> dict[str, Any]:
    """A format 1 ``train_state.pt``, unpickled with only plain data allowed."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    allowed = [np.ndarray, np.dtype, core.multiarray._reconstruct, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(file, weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{file} cannot be read as plain data ({exc}); the run cannot be resumed, but its "
            f"weights can start a new one (--init)"
        ) from exc
