"""Output folders: claimed before anything is written, locked while a process writes them.

A folder a command writes (a run folder, a demo's folder) is marked as hypermaml's by a small
file, ``.hypermaml.json``, naming the command that created it. A command refuses an existing
folder without that mark (unless ``force``), and even with ``force`` it never deletes or
overwrites anything that was already there: the names it would write must be free. While a
process writes a folder it holds ``.lock`` (an OS file lock, released by the OS when the process
dies, so a killed run never leaves a stale lock); a second writer gets an error naming the
holder.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from ._version import __version__
from .errors import HypermamlError

MARKER = ".hypermaml.json"
"""The file that marks a folder as written by hypermaml."""
LOCK = ".lock"
HOLDER = ".lock.json"
"""Who holds ``.lock`` (pid, host, command, since): for the message a second writer gets."""


class OutputError(HypermamlError, RuntimeError):
    """An output path is in the way: a file, a foreign folder, or a folder another process
    writes."""


def check_writable_file(path: str | Path | None, flag: str) -> None:
    """Refuse, before any work, a file the command could not write at its end: a folder, a path
    under a file, or one whose folder (its nearest existing parent, when folders are to be
    created) is not writable. None (the option not given) passes."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; name a file, e.g. {path / 'out.json'}")
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir():
        raise OutputError(f"{flag} {path}: {parent} is a file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot write into {parent}; choose another path")


def owner(path: str | Path) -> dict[str, Any] | None:
    """The mark of a folder hypermaml created (its command and date), or None."""
    try:
        mark = json.loads((Path(path) / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return mark if isinstance(mark, dict) and mark.get("format") == "hypermaml-folder" else None


def claim_folder(
    path: str | Path,
    command: str,
    force: bool = False,
    writes: Iterable[str] = (),
    recognise: Callable[[Path], bool] | None = None,
) -> Path:
    """Make ``path`` a folder of ``command`` to write into, refusing one that is in the way.

    A missing or empty folder is created and marked. A folder hypermaml marked, or one that
    ``recognise`` tells apart as written by hypermaml before folders were marked, is taken as it
    is (the caller decides what its content means). Any other folder is refused unless
    ``force``, and then only when none of the names in ``writes`` (the entries the command
    creates, glob patterns allowed) exists in it: nothing already there is ever deleted or
    overwritten."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} is a file; --out must be a folder (choose another path)")
    if path.is_dir() and owner(path) is not None:
        return path
    present = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    if present and recognise is not None and recognise(path):
        present = []
    elif present:
        if not force:
            shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
            raise OutputError(
                f"{path} exists and was not created by hypermaml (it holds {shown}); choose "
                f"another --out, or pass --force to write into it (nothing in it is deleted "
                f"or overwritten)"
            )
        clash = sorted({p.name for pattern in writes for p in path.glob(pattern)})
        if clash:
            raise OutputError(
                f"{path} already holds {', '.join(clash)}, which hypermaml {command} would "
                f"write; --force never overwrites what it did not create: move them away or "
                f"choose another --out"
            )
    path.mkdir(parents=True, exist_ok=True)
    mark = {"format": "hypermaml-folder", "command": command,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "hypermaml": __version__,
            "adopted": bool(present)}  # fmt: skip
    write_text_atomic(path / MARKER, json.dumps(mark, indent=2))
    return path


@contextmanager
def locked(path: str | Path, command: str) -> Iterator[None]:
    """Hold the write lock of the claimed folder ``path`` while the body runs; an error naming
    the holder when another process holds it."""
    path = Path(path)
    lock = filelock.FileLock(str(path / LOCK), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputError(
            f"{path} is being written by another process ({_holder(path)}); wait for it to "
            f"finish or stop it, or choose another --out"
        ) from None
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        write_text_atomic(path / HOLDER, json.dumps(holder))
        yield
    finally:
        lock.release()


def _holder(path: Path) -> str:
    try:
        h = json.loads((path / HOLDER).read_text())
        return f"hypermaml {h['command']}, pid {h['pid']} on {h['host']}, since {h['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def fsync_dir(path: Path) -> None:
    """Make the entries (creations, renames) of folder ``path`` durable; a no-op where folders
    cannot be opened (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` and flush it to disk."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` beside ``path`` under a name unique to this writer, flush it to disk and
    rename it into place: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{unique_suffix()}")
    try:
        write_bytes_durable(tmp, text.encode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def unique_suffix() -> str:
    """A name part no other writer uses at the same time: the process id and random bits."""
    return f"{os.getpid()}-{os.urandom(3).hex()}"
