"""The decoded-image cache: uint8 tensors decoded once from the data files, keyed on their content.

A cache entry is trusted only when its key matches. The key is the sha256 of the loader's name,
its ``version`` (bumped when the decoding changes) and the sha256 of every source file, so a
source replaced by another of the same name and size, or a new decoding, rebuilds the entry.
Hashing the sources on every load is cheap next to decoding (the two Omniglot zips, 14 MB, hash
in about 30 ms), so the digests themselves are not cached.

Entries are written atomically (a temporary file beside the entry, unique per writer, then
``os.replace``), so concurrent runs never read a half-written entry. A cache that cannot be
written (read-only folder, ``$HYPERMAML_CACHE`` naming a file, full disk) only warns: the images
already decoded are used, and are decoded again next time.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from .files import cache_dir, content_sha256

T = TypeVar("T")
Blob = dict[str, object]

INVALID_ENTRY_ERRORS: tuple[type[BaseException], ...] = (KeyError, TypeError, ValueError)
"""What a loader's ``decode`` raises on an entry that does not hold what it expects."""


class CacheWarning(UserWarning):
    """The decoded-image cache could not be written; decoding is repeated on the next load."""


def cache_key(kind: str, version: int, sources: Sequence[Path]) -> str:
    """The sha256 of (``kind``, ``version``, the name and sha256 of each source, in order)."""
    parts = {
        "kind": kind,
        "version": version,
        "sources": [[path.name, content_sha256(path)] for path in sources],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def entry_path(kind: str, key: str) -> Path:
    """Where the entry of ``kind`` with ``key`` lives (one file per key: two data folders with
    different files do not evict each other's entries)."""
    return cache_dir() / f"{kind}-{key[:16]}.pt"


def read_entry(path: Path, key: str) -> Blob | None:
    """The stored dict at ``path`` when it is a readable entry of ``key``, else None."""
    try:
        blob = torch.load(path, weights_only=True)
    except Exception:  # missing, unreadable, truncated or not a torch file: rebuilt by the caller
        return None
    if not isinstance(blob, dict) or blob.get("key") != key:
        return None
    return blob


def write_entry(path: Path, key: str, blob: Blob) -> bool:
    """Store ``blob`` under ``key`` at ``path`` atomically; warn and return False on failure."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp", delete=False
        ) as fh:
            tmp = fh.name
            torch.save({**blob, "key": key}, fh)
        os.replace(tmp, path)
        return True
    except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as RuntimeError
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(
            f"cannot write the decoded-image cache in {path.parent} ({exc}); the decoded images "
            f"are used but will be decoded again next time. Set HYPERMAML_CACHE to a writable "
            f"folder to keep them",
            CacheWarning,
            stacklevel=3,
        )
        return False


def load_or_build(
    kind: str,
    version: int,
    sources: Sequence[Path],
    build: Callable[[], T],
    encode: Callable[[T], Blob],
    decode: Callable[[Blob], T],
) -> T:
    """The decoded data of ``sources``: from the cache when its key matches, else ``build()``
    (then stored, with a warning when it cannot be).

    ``encode`` turns the data into a dict of tensors, strings and lists; ``decode`` turns it back
    and raises KeyError, TypeError or ValueError when the dict does not hold what it should
    (the entry is then rebuilt).
    """
    key = cache_key(kind, version, sources)
    path = entry_path(kind, key)
    blob = read_entry(path, key)
    if blob is not None:
        try:
            return decode(blob)
        except INVALID_ENTRY_ERRORS:
            pass  # an entry of the right key but the wrong content is rebuilt below
    data = build()
    write_entry(path, key, encode(data))
    return data
