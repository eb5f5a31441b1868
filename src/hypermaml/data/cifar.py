"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the official "python version" archives.

The archives are read in place, never extracted, from ``<data dir>/cifar/``; a missing one is
downloaded from https://www.cs.toronto.edu/~kriz/ and checked against the md5 published there.

Each member is a pickled dict (Python 2, so unpickled with ``encoding="bytes"``): ``data`` is a
uint8 array [n, 3072], one row per image, the 1024 red values then green then blue, each plane
row-major 32x32; labels are ``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100, used here).
Pickles can run code, so they are read with an unpickler that only knows numpy's array
reconstruction and refuses anything that is not a plain dict of bytes, numbers, lists and arrays.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import RemoteFile, fetch, replace_hint

_URL = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES = {
    "cifar10": RemoteFile(
        "cifar/cifar-10-python.tar.gz",
        _URL + "cifar-10-python.tar.gz",
        "md5:c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": RemoteFile(
        "cifar/cifar-100-python.tar.gz",
        _URL + "cifar-100-python.tar.gz",
        "md5:eb9058c3a382ffc7106e4002c42a8d85",
    ),
}
# (members holding the images of each split, member with the class names, its key, label key)
LAYOUT = {
    "cifar10": {
        "train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)],
        "test": ["cifar-10-batches-py/test_batch"],
        "meta": ("cifar-10-batches-py/batches.meta", "label_names"),
        "labels": "labels",
    },
    "cifar100": {
        "train": ["cifar-100-python/train"],
        "test": ["cifar-100-python/test"],
        "meta": ("cifar-100-python/meta", "fine_label_names"),
        "labels": "fine_labels",
    },
}
N_CLASSES = {"cifar10": 10, "cifar100": 100}


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn  # numpy >= 2 (and 1.26 shims)
    except ImportError:  # pragma: no cover - older numpy
        from numpy.core.multiarray import _reconstruct as fn
    return fn


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
_SCALARS = (bytes, str, int, float, bool, type(None))


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays and nothing else that needs a global."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name}") from None


def _plain(value, depth: int = 0) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype != object
    if isinstance(value, (list, tuple)) and depth == 0:
        return all(_plain(v, 1) for v in value)
    return False


def read_batch(blob: bytes, where: str) -> dict[str, object]:
    """Unpickle one CIFAR member safely; keys are returned as str. ``where`` names it in errors."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as exc:  # refused global, truncated or garbled pickle
        raise DataError(
            f"{where} is not a plain CIFAR pickle ({exc}); replace the archive"
        ) from exc
    if not isinstance(obj, dict) or not all(isinstance(k, (bytes, str)) for k in obj):
        raise DataError(f"{where} holds a {type(obj).__name__}, not a dict; replace the archive")
    if not all(_plain(v) for v in obj.values()):
        raise DataError(f"{where} holds values other than bytes, numbers, lists and arrays; "
                        "replace the archive")  # fmt: skip
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_members(path: Path, names: list[str], fix: str) -> dict[str, bytes]:
    """The bytes of the named members of a tar.gz, in one pass and without extracting.

    A corrupt archive (cut short, a garbled deflate stream, a bad gzip CRC) is a DataError naming
    the archive and, when the fault lies in one, the member.
    """
    wanted, found = set(names), {}
    last: str | None = None  # the last member whose header was read
    reading: str | None = None  # the member whose data is being read
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                last = member.name
                if member.name in wanted and member.isfile():
                    reading = member.name
                    found[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
                    reading = None
            # tar keeps no checksum of member data and the gzip CRC is only checked at the end of
            # the stream, which the tar reader stops short of: read on, so a flipped bit is caught
            while tar.fileobj.read(1 << 20):  # type: ignore[union-attr]
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        if reading is not None:
            where = f"member {reading} is corrupt: "
        else:
            where = "" if last is None else f"broken after member {last}: "
        raise DataError(
            f"{path} is not a readable tar.gz archive ({where}{type(exc).__name__}: {exc}); {fix}"
        ) from exc
    missing = [n for n in names if n not in found]
    if missing:
        raise DataError(f"{path} lacks {missing}; {fix}")
    return found


def _field(batch: dict[str, object], key: str, where: str):
    if key not in batch:
        raise DataError(
            f"{where} has no {key!r} entry (keys: {sorted(batch)}); replace the archive"
        )
    return batch[key]


def _class_names(raw: object, where: str, fix: str) -> list[str]:
    """The class names of the meta member: a list of bytes (or str)."""
    try:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in raw]  # type: ignore[attr-defined]
    except (TypeError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: the class names are not a list of text ({exc}); {fix}") from exc


def _labels(raw: object, where: str, fix: str) -> np.ndarray:
    """The labels of a batch as int64 [n]."""
    try:
        return np.asarray(raw, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{where}: the labels are not integers ({exc}); {fix}") from exc


def load_cifar(
    root: Path, name: str, split: str | tuple[str, ...]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images uint8 [n, 3, 32, 32] RGB, labels int64 [n], class names) of ``split``.

    ``name`` is "cifar10" or "cifar100" (fine labels); ``split`` is "train" or "test", or a
    tuple of them (their images one after the other, read in one pass over the archive).
    """
    remote, layout = ARCHIVES[name], LAYOUT[name]
    path = fetch(remote, root)
    fix = replace_hint(path, remote)
    meta_member, names_key = layout["meta"]
    batches = [m for s in ((split,) if isinstance(split, str) else split) for m in layout[s]]
    members = _read_members(path, [*batches, meta_member], fix)
    meta_where = f"{path}:{meta_member}"
    raw_names = _field(read_batch(members[meta_member], meta_where), names_key, meta_where)
    class_names = _class_names(raw_names, meta_where, fix)
    if len(class_names) != N_CLASSES[name]:
        raise DataError(
            f"{path}: {len(class_names)} class names, expected {N_CLASSES[name]}; {fix}"
        )
    images, labels = [], []
    for member in batches:
        where = f"{path}:{member}"
        batch = read_batch(members[member], where)
        data = np.asarray(_field(batch, "data", where))
        batch_labels = _labels(_field(batch, layout["labels"], where), where, fix)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{where}: data of {data.dtype} {data.shape}, expected uint8 "
                            f"[n, 3072]; {fix}")  # fmt: skip
        if batch_labels.shape != (data.shape[0],):
            raise DataError(
                f"{where}: {batch_labels.shape} labels for {data.shape[0]} images; {fix}"
            )
        if data.shape[0] and not 0 <= batch_labels.min() <= batch_labels.max() < len(class_names):
            raise DataError(f"{where}: labels outside 0..{len(class_names) - 1}; {fix}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return (
        torch.from_numpy(np.concatenate(images)),
        torch.from_numpy(np.concatenate(labels)),
        class_names,
    )
