"""The on-disk format of every hypermaml artefact: a folder with weights and a JSON description.

A checkpoint folder holds ``model.safetensors`` (the weights) and ``checkpoint.json`` (a format
tag, the kind of model, the full config it was built from, the epoch, metrics, library versions
and the sha256 of every other file); a run's ``last`` folder also holds the training state
(optimiser, schedule and random generators) as ``train_state.safetensors`` plus
``train_state.json``, so that training resumes exactly. Nothing in a checkpoint is a pickle:
loading one never runs code. Two kinds exist (``kind``): few-shot methods written by
``hypermaml train`` and supervised classifiers written by ``hypermaml classify``. Building the
model a checkpoint describes is the job of ``methods.checkpoint`` and ``classify.checkpoint``.

A checkpoint is written into a folder beside its place, under a name unique to the writer
(``NAME.tmp-PID-RANDOM``), every file flushed to disk, ``checkpoint.json`` last; then the previous
folder is renamed aside (``NAME.old-PID-RANDOM``) and the new one into place. A kill at any point
leaves at least one complete copy, and ``latest_complete`` finds it whatever its name.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import safetensors
import safetensors.torch
import torch

from .._version import __version__
from ..errors import CheckpointError, ConfigError
from ..outputs import OutputError, fsync_dir, unique_suffix, write_bytes_durable
from . import state as state_codec
from .names import META, WEIGHTS

FORMAT = "hypermaml-checkpoint"
FORMAT_VERSION = 6
"""6: ``train.task_stream`` and ``train.precision``. 5: ``data.train_n_way``. 4:
``train.tasks_per_pass``. 3: the natural-image fields of the data config (``data.train_aug``,
...). 2: sha256 of every file, complete stored configs, training states
without pickles. 1: written before those. ``hypermaml upgrade`` migrates older checkpoints
(``migrate.ADDED_FIELDS``)."""
STATE_TENSORS = "train_state.safetensors"
STATE_TREE = "train_state.json"
LEGACY_TRAIN_STATE = "train_state.pt"
"""Format 1's pickled training state: never loaded by a resume (``hypermaml upgrade`` reads it
with ``torch.load(weights_only=True)``, which builds plain data only)."""
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


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_checkpoint(
    path: str | Path,
    weights: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    train_state: Mapping[str, Any] | None = None,
) -> None:
    """Write ``weights`` (safetensors), ``train_state`` (tensors plus JSON) and ``meta`` with the
    format tag, library versions and file digests (JSON) as the checkpoint folder ``path``,
    replacing the folder there only once the new one is complete on disk."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{unique_suffix()}")
    tmp.mkdir(parents=True)
    files = {WEIGHTS: _weights_bytes(weights)}
    if train_state is not None:
        tensors, tree = state_codec.encode(dict(train_state))
        files[STATE_TENSORS] = safetensors.torch.save(tensors, metadata={"format": FORMAT})
        files[STATE_TREE] = json.dumps(tree).encode()
    for name, data in files.items():
        write_bytes_durable(tmp / name, data)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta,
            "sha256": {name: sha256(data) for name, data in files.items()},
            "versions": library_versions()}  # fmt: skip
    write_bytes_durable(tmp / META, json.dumps(meta, indent=2).encode())
    fsync_dir(tmp)
    old = path.with_name(f"{path.name}.old-{unique_suffix()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    fsync_dir(path.parent)
    for stale in _copies(path, legacy=False):  # the previous folder, and any a kill left behind
        shutil.rmtree(stale, ignore_errors=True)


def _weights_bytes(weights: Mapping[str, torch.Tensor]) -> bytes:
    tensors = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    return safetensors.torch.save(tensors, metadata={"format": FORMAT})


def _copies(path: Path, legacy: bool = True) -> list[Path]:
    """The folders a write of ``path`` leaves beside it: a new one being written
    (``NAME.tmp-PID-RANDOM``) and the one it replaces (``NAME.old-PID-RANDOM``), and with
    ``legacy`` the fixed names of earlier releases (``NAME.tmp``, ``NAME.old``). Only names of
    exactly these forms: a folder a person named ``NAME.old-version`` is never one."""
    pattern = re.compile(re.escape(path.name) + r"\.(tmp|old)" + r"(-\d+-[0-9a-f]{6})?")
    found = []
    for p in path.parent.glob(path.name + ".*"):
        match = pattern.fullmatch(p.name)
        if match and p.is_dir() and (legacy or match.group(2)):
            found.append(p)
    return sorted(found)


def _read_file(path: Path, name: str, meta: Mapping[str, Any]) -> bytes:
    """The bytes of ``path/name``, checked against the digest ``meta`` records."""
    try:
        data = (path / name).read_bytes()
    except OSError as exc:
        raise CheckpointError(
            f"{path / name} is unreadable ({exc}); the checkpoint is corrupt"
        ) from exc
    expected = meta.get("sha256", {}).get(name)
    if expected is None:
        raise CheckpointError(f"{path / META} records no digest of {name}; it is corrupt")
    if sha256(data) != expected:
        raise CheckpointError(
            f"{path / name} does not match the sha256 in {META}: the file is corrupt (a copy "
            f"cut short or changed). Restore it from where it came, or retrain"
        )
    return data


def read_weights(path: Path, meta: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensors of ``path/model.safetensors``, verified against their digest."""
    data = _read_file(path, WEIGHTS, meta)
    try:
        return safetensors.torch.load(data)
    except Exception as exc:  # a digest match on an unreadable file: written broken
        raise CheckpointError(f"{path / WEIGHTS} is unreadable ({exc}); it is corrupt") from exc


def _resolve(path: Path) -> Path:
    """A checkpoint folder; a run folder resolves to its ``best`` (few-shot) or ``final``
    (classifier) checkpoint, and a folder whose save was interrupted to its complete copy; a
    registered name (``registry.py``) to that reference model's folder."""
    if not path.exists():
        from .registry import is_registered, resolve

        if is_registered(str(path)):
            return resolve(str(path))
    if (path / META).is_file():
        return path
    for name in ("best", "final"):
        found = latest_complete(path, name)
        if found is not None:
            return found
    found = latest_complete(path.parent, path.name)
    if found is not None:
        return found
    raise CheckpointError(
        f"{path} is not a hypermaml checkpoint: it has no {META}. Pass a checkpoint folder "
        f"(RUN/best, RUN/last, RUN/final, or one under checkpoints/)."
    )


def _parse_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{path / META} is unreadable ({exc}); the checkpoint is corrupt"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path / META} is not a hypermaml checkpoint (no format tag)")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer hypermaml (format {version}); upgrade hypermaml"
        )
    return meta


def stored_format(path: Path) -> int | None:
    """The format version of the checkpoint folder ``path``, or None when it holds none."""
    try:
        return _parse_meta(path).get("format_version", 0)
    except CheckpointError:
        return None


def read_meta(
    path: str | Path, expect: Kind | None = None, migrated: bool = True
) -> tuple[Path, dict[str, Any]]:
    """(the checkpoint folder ``path`` resolves to, its checked ``checkpoint.json``), refused
    unless it is of kind ``expect`` when that is given, and (``migrated``) unless it is of the
    current format."""
    path = _resolve(Path(path))
    meta = _parse_meta(path)
    if migrated and meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} is a checkpoint of format {meta.get('format_version')}, written by an "
            f"earlier hypermaml (this one reads format {FORMAT_VERSION}); migrate it once with "
            f"`hypermaml upgrade {path}` (it rewrites only {META})"
        )
    missing = [key for key in ("method", "image_shape", "config") if key not in meta]
    if missing:
        raise CheckpointError(f"{path / META} lacks {missing}; the checkpoint is corrupt")
    if expect is not None and kind(meta) != expect:
        (held, written_by), (wanted, writer) = _WRITERS[kind(meta)], _WRITERS[expect]
        raise CheckpointError(
            f"{path} holds {held} ({written_by}), not {wanted}; pass a checkpoint written by "
            f"{writer}"
        )
    return path, meta


def stored_config(path: Path, meta: dict[str, Any], config_class: type) -> Any:
    """The typed config a checkpoint stores (``config_class.from_dict``), which must be
    complete: a missing field is never filled with today's default."""
    try:
        return config_class.from_dict(meta["config"], complete=True)
    except (ConfigError, KeyError) as exc:
        raise CheckpointError(f"{path}: its stored config is invalid ({exc})") from exc


def checkpoint_kind(path: str | Path) -> Kind:
    """The ``kind`` of the checkpoint at ``path``."""
    return kind(read_meta(path)[1])


def load_weights_into(
    module: torch.nn.Module,
    path: Path,
    meta: Mapping[str, Any],
    what: str,
    rename: Mapping[str, str] | None = None,
) -> None:
    """Load the verified ``path/model.safetensors`` into ``module`` (the ``what`` its config
    describes), refusing, with the names, weights that belong to another model. ``rename``: old
    key prefix -> current one, for files written before a module was renamed."""
    state = read_weights(path, meta)
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


def load_train_state(path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    """The training state of a run's ``last`` checkpoint, verified against its digests; built
    from tensors and JSON only."""
    if not (path / STATE_TREE).is_file():
        raise CheckpointError(f"{path} holds no training state ({STATE_TREE}); cannot resume")
    tensors = safetensors.torch.load(_read_file(path, STATE_TENSORS, meta))
    try:
        tree = json.loads(_read_file(path, STATE_TREE, meta))
        return state_codec.decode(tensors, tree)
    except ValueError as exc:
        raise CheckpointError(f"{path}: the training state is corrupt ({exc})") from exc


def is_complete(path: Path, train_state: bool = False) -> bool:
    """Whether ``path`` is a whole checkpoint of the current format: its description readable,
    every file present and matching its digest (with a training state when ``train_state``)."""
    try:
        meta = _parse_meta(path)
        if meta.get("format_version") != FORMAT_VERSION:
            return False
        names = [WEIGHTS] + ([STATE_TENSORS, STATE_TREE] if train_state else [])
        for name in names:
            _read_file(path, name, meta)
    except CheckpointError:
        return False
    return True


def latest_complete(folder: Path, name: str, train_state: bool = False) -> Path | None:
    """The complete checkpoint of the latest epoch among ``folder/name`` and the copies an
    interrupted write leaves beside it (``name.tmp-*``, ``name.old-*``); None if there is none."""
    candidates = [folder / name, *_copies(folder / name)]
    found = [(p, _epoch(p)) for p in candidates if p.is_dir() and is_complete(p, train_state)]
    if not found:
        return None
    return max(found, key=lambda pe: (pe[1], pe[0] == folder / name))[0]


def leftovers(folder: Path, name: str) -> list[Path]:
    """Every folder named for the checkpoint ``name`` in ``folder``, complete or not."""
    return [p for p in [folder / name, *_copies(folder / name)] if p.exists()]


def _epoch(path: Path) -> int:
    epoch = _parse_meta(path).get("epoch")
    return epoch if isinstance(epoch, int) else -1


def check_replaceable(out: Path, force: bool, made_by: str, what: str) -> None:
    """Refuse a checkpoint destination ``out`` that would replace anything but an earlier
    ``what`` (a checkpoint whose ``checkpoint.json`` has the key ``made_by``), and that only
    with ``force``: a run folder, another checkpoint, a folder of other files, a file."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    earlier = False
    if out.is_dir() and (out / META).is_file():
        try:
            earlier = made_by in json.loads((out / META).read_text())
        except (OSError, ValueError):
            earlier = False
    if earlier and force:
        return
    if earlier:
        raise OutputError(f"{out} holds an earlier {what}; pass --force to replace it")
    raise OutputError(
        f"{out} exists and is not an earlier {what}; the {what} writes a new checkpoint folder "
        f"and never replaces anything else: choose another --out"
    )


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
