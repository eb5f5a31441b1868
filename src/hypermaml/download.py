"""A file fetched from its source: downloaded to a temporary name, verified against its pinned
digest, then moved into place, so that a broken transfer never leaves a corrupt file behind.
Data files (``data/files.py``) and reference models (``checkpoint/registry.py``) come this way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError


@dataclass(frozen=True)
class RemoteFile:
    """A file of a dataset: its place under the data directory and its official source.

    ``digest`` is ``"sha256:<hex>"`` or ``"md5:<hex>"`` of the official file; None when the source
    publishes no fixed checksum, in which case the content check of the loader is the verification.
    """

    relpath: str
    url: str
    digest: str | None


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file at ``path`` (raises OSError when it cannot be read)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
