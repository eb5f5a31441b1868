"""``hypermaml upgrade``: checkpoints of format 1 rewritten as format 2, explicitly and once.

Format 1 checkpoints carry no digests, their stored configs lack the fields added while format 1
was current, and a run's ``last`` holds a pickled ``train_state.pt``. The upgrade fills only the
fields in ``ADDED_FIELDS``, each with the value that reproduces how format 1 checkpoints were
trained (e.g. ``train.deterministic: false``: the kernels were timed); a stored config lacking
anything else is refused, never completed from today's defaults. The weights are not touched:
their digest is computed and recorded. A pickled training state is read with
``torch.load(weights_only=True)`` (plain tensors and containers only, plus numpy's random state)
and stored as tensors plus JSON; the pickle is then removed.
"""

from __future__ import annotations

import copy
import json
import time
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
    sha256,
)
from .checkpoint.state import encode
from .classify import ClassifyConfig
from .config import ExperimentConfig, missing_keys
from .errors import CheckpointError
from .outputs import write_bytes_durable, write_text_atomic

ADDED_FIELDS: dict[str, dict[str, Any]] = {
    "few_shot": {"data.train_stroke": 0.0, "data.train_zoom": 1.0, "model.hyper": "none",
                 "train.val_every": 1, "train.threads": None, "train.deterministic": False},
    "classifier": {"optim.hyper_weight_decay": 0.0, "run.deterministic": False},
}  # fmt: skip
"""Fields added while format 1 was current -> the value that reproduces format 1's behaviour."""
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
    """Rewrite the format 1 checkpoint ``path`` as format 2 (a no-op on a current one)."""
    meta = _parse_meta(path)
    if meta.get("format_version") == FORMAT_VERSION:
        return f"{path}: already format {FORMAT_VERSION}"
    config, filled = _complete_config(path, meta)
    files = {WEIGHTS: (path / WEIGHTS).read_bytes()}
    legacy = path / LEGACY_TRAIN_STATE
    if legacy.is_file():
        tensors, tree = encode(_read_legacy_state(legacy))
        files[STATE_TENSORS] = safetensors.torch.save(tensors)
        files[STATE_TREE] = json.dumps(tree).encode()
        for name in (STATE_TENSORS, STATE_TREE):
            write_bytes_durable(path / name, files[name])
    new = {**meta, "format_version": FORMAT_VERSION, "config": config,
           "sha256": {name: sha256(data) for name, data in files.items()},
           "migrated": {"from_format": meta.get("format_version", 1), "filled": filled,
                        "date": time.strftime("%Y-%m-%d")}}  # fmt: skip
    write_text_atomic(path / META, json.dumps(new, indent=2))
    if legacy.is_file():
        legacy.unlink()
    state = ", training state converted" if STATE_TREE in files else ""
    fields = ", ".join(f"{k}={v!r}" for k, v in filled.items()) or "none"
    was = meta.get("format_version", 1)
    return f"{path}: format {was} -> {FORMAT_VERSION}{state}; filled {fields}"


def _complete_config(path: Path, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stored config with the ``ADDED_FIELDS`` it lacks filled in, and those fields."""
    try:
        run_kind = kind(meta)
        config = copy.deepcopy(meta["config"])
    except KeyError as exc:
        raise CheckpointError(f"{path / META} lacks {exc}; it is corrupt") from exc
    added = ADDED_FIELDS[run_kind]
    missing = missing_keys(_CONFIG_CLASSES[run_kind], config)
    unknown = [key for key in missing if key not in added]
    if unknown:
        raise CheckpointError(
            f"{path}: its stored config lacks {', '.join(unknown)}, which no format 1 "
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
