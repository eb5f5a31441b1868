"""Where data files live, and how a missing one is fetched and verified.

The data directory is ``--data-dir``, else ``$HYPERMAML_DATA``, else ``~/.cache/hypermaml``.
Decoded images are cached as uint8 tensors under ``$HYPERMAML_CACHE``, else
``~/.cache/hypermaml/processed`` (the data directory may be read-only), keyed on the content of
the files they were decoded from (see ``cache.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..download import RemoteFile, fetch, file_digest
from ..errors import DataError

__all__ = ["RemoteFile", "cache_dir", "content_sha256", "data_dir", "fetch", "file_digest",
           "replace_hint"]  # fmt: skip


def data_dir(explicit: str | Path | None = None) -> Path:
    """The directory data files are read from (and downloaded into)."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("HYPERMAML_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/hypermaml").expanduser()


def cache_dir() -> Path:
    """The directory for decoded, resized image tensors (``cache.py`` creates it when writing).

    Not created here: a cache that cannot be written only costs decoding time (see
    ``cache.load_or_build``), so an unwritable ``$HYPERMAML_CACHE`` must not stop a run.
    """
    env = os.environ.get("HYPERMAML_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/hypermaml/processed").expanduser()


def content_sha256(path: Path) -> str:
    """The sha256 of a data file; a DataError naming the file when it cannot be read."""
    try:
        return file_digest(path, "sha256")
    except OSError as exc:
        raise DataError(
            f"cannot read {path} ({exc.strerror or exc}); make it readable, or put a good copy "
            f"of the file at {path}"
        ) from exc


def replace_hint(path: Path, remote: RemoteFile) -> str:
    """How to replace a bad copy of ``remote`` at ``path``: the end of a DataError message."""
    return (
        f"delete {path} so it is downloaded again from {remote.url}, or put a good copy of that "
        f"file at {path}"
    )
