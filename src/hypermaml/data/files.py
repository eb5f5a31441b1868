"""Where data files live, and how a missing one is fetched and verified.

The data directory is ``--data-dir``, else ``$HYPERMAML_DATA``, else ``~/.cache/hypermaml``.
Decoded images are cached as uint8 tensors under ``$HYPERMAML_CACHE``, else
``~/.cache/hypermaml/processed`` (the data directory may be read-only), keyed on the content of
the files they were decoded from (see ``cache.py``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: its place under the data directory and its official source.

    ``digest`` is ``"sha256:<hex>"`` or ``"md5:<hex>"`` of the official file; None when the source
    publishes no fixed checksum, in which case the content check of the loader is the verification.
    """

    relpath: str
    url: str
    digest: str | None


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


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (raises OSError when it cannot be read)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def fetch(remote: RemoteFile, root: Path) -> Path:
    """Return the local path of ``remote`` under ``root``, downloading it if it is missing.

    A download is verified against the pinned checksum before it is moved into place, so a
    broken transfer never leaves a corrupt file behind. When the download fails, the error
    says which file to put where.
    """
    target = root / remote.relpath
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            with urllib.request.urlopen(remote.url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        tmp_path = Path(tmp.name)
        if remote.digest is not None:
            algorithm, expected = remote.digest.split(":")
            actual = file_digest(tmp_path, algorithm)
            if actual != expected:
                tmp_path.unlink()
                raise DataError(
                    f"downloaded {remote.url} but its {algorithm} is {actual}, expected {expected}."
                    f" Download it by hand and put it at {target}"
                )
        os.replace(tmp_path, target)
        return target
    except DataError:
        raise
    except Exception as exc:  # network down, read-only directory, HTTP error ...
        if "tmp" in locals():
            Path(tmp.name).unlink(missing_ok=True)
        raise DataError(
            f"missing data file {target}: the download from {remote.url} failed ({exc}). "
            f"Put that file at {target}, or point --data-dir / $HYPERMAML_DATA at a directory "
            f"that holds {remote.relpath}."
        ) from exc
