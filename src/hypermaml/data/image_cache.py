"""The decode-once cache of a folder of images: one uint8 .npy, memory-mapped, and a manifest.

A natural-image dataset (tens of thousands of JPEGs) is decoded once into
``$HYPERMAML_CACHE/<slot>-<key>.npy``, uint8 [N, C, size, size] with the classes one after
another, and read back memory-mapped (``np.load(mmap_mode="c")`` then ``torch.from_numpy``),
so a run pages in only what it samples and never holds a float copy. ``<slot>.json`` (the
manifest) names the valid data file, its key, the classes and their image counts, and the files
left out as unreadable.

The key is the sha256 of the cache format, the decoder version, the geometry (size, channels,
resize ratio), the classes in order, and the listing of the source: the relative path, size
and ``mtime_ns`` of every image file. Hashing the files' contents, as ``cache.py`` does for the
few archives of Omniglot, would read every byte of 60,000 JPEGs (several GB) on each load, far
slower than listing them; a file replaced by another of the same name therefore rebuilds the
cache only when its size or modification time differs (copies that keep both, such as
``cp -p`` of a same-sized file, are not noticed: delete the cache to force a rebuild).

The data file is written under a temporary name, flushed to disk (fsync) and renamed into
place; the manifest is written last, the same way. A run killed while decoding leaves no valid
entry (at most a temporary file, removed by the next build once its writer is gone). A cache
folder that cannot be written (or a full disk, detected before decoding by reserving the file's
space) only warns (``CacheWarning``): the images are decoded into memory and used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import DataError
from ..outputs import fsync_dir, unique_suffix, write_text_atomic
from .cache import CacheWarning
from .files import cache_dir
from .images import DECODER_VERSION, Geometry, decode_into, is_grey, map_threads

CACHE_FORMAT = 1
"""Version of the layout below (manifest and data file)."""
SHOWN = 3
"""File names an error or warning lists before "and N others"."""

CacheState = Literal["present", "stale", "missing"]


class SkippedImagesWarning(UserWarning):
    """Unreadable images were left out of a dataset (``skip_bad_images``)."""


@dataclass(frozen=True)
class ImageFolderSource:
    """Image files grouped by class: ``root / files[c][i]`` is image i of class ``classes[c]``.

    ``kind`` names the dataset family in cache file names (e.g. "cub"); ``describe`` is how
    errors name the source (e.g. "CUB-200-2011 at /data/CUB_200_2011/images").
    """

    kind: str
    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[str, ...], ...]
    describe: str

    @property
    def n_files(self) -> int:
        return sum(len(f) for f in self.files)


@dataclass(frozen=True)
class CacheSettings:
    """Geometry of the cached images; ``channels`` None: 3 unless every image is stored grey."""

    size: int
    channels: int | None = 3
    resize_ratio: float = 8 / 7

    def label(self) -> str:
        channels = {None: "auto", 1: "grey", 3: "rgb"}[self.channels]
        ratio = "" if abs(self.resize_ratio - 8 / 7) < 1e-12 else f"-r{self.resize_ratio:g}"
        return f"{self.size}px-{channels}{ratio}"


@dataclass
class CachedImages:
    """The decoded images of a source: ``images`` uint8 [N, C, size, size], the classes one
    after another with ``counts[c]`` images each (unreadable files left out); ``skipped``:
    (relative path, reason) of each file left out; ``path``: the data file, None when the
    images are held in memory (the cache could not be written)."""

    images: torch.Tensor
    counts: list[int]
    skipped: list[tuple[str, str]]
    path: Path | None


def listing(source: ImageFolderSource) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file, in order; a DataError naming a file that
    cannot be read."""
    out = []
    for files in source.files:
        for rel in files:
            path = source.root / rel
            try:
                st = os.stat(path)
            except OSError as exc:
                raise DataError(
                    f"cannot read {path} ({exc.strerror or exc}), an image of {source.describe}; "
                    f"restore the file or make it readable"
                ) from exc
            out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def cache_key(source: ImageFolderSource, settings: CacheSettings, files: list) -> str:
    """The sha256 that a valid cache entry of ``source`` with ``settings`` carries."""
    parts = {
        "format": CACHE_FORMAT,
        "decoder": DECODER_VERSION,
        "size": settings.size,
        "channels": settings.channels,
        "resize_ratio": settings.resize_ratio,
        "classes": [[c, len(f)] for c, f in zip(source.classes, source.files)],
        "files": files,
    }
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def slot_path(source: ImageFolderSource, settings: CacheSettings) -> Path:
    """``<cache dir>/<kind>-<geometry>-<source folder digest>``: the manifest is this path with
    ``.json``; one slot per source folder and geometry, so two folders do not evict each other."""
    where = hashlib.sha256(str(source.root.resolve()).encode()).hexdigest()[:12]
    return cache_dir() / f"{source.kind}-{settings.label()}-{where}"


def cache_state(source: ImageFolderSource, settings: CacheSettings) -> CacheState:
    """The state of the cache of ``source``: "present" (valid for the files as they are now),
    "stale" (built from other files or settings, or damaged: rebuilt on the next load) or
    "missing"."""
    slot = slot_path(source, settings)
    if not slot.with_suffix(".json").is_file():
        return "missing"
    key = cache_key(source, settings, listing(source))
    return "present" if _read(slot, key) is not None else "stale"


def load_or_build(
    source: ImageFolderSource,
    settings: CacheSettings,
    *,
    skip_bad_images: bool = False,
    progress: bool | None = None,
) -> CachedImages:
    """The decoded images of ``source``: from the cache when its key matches, else decoded now
    (on every core, with a progress bar) and stored.

    Unreadable images raise a DataError naming them (the cache is still written, with those
    files recorded as left out, so that a second run with ``skip_bad_images`` need not decode
    again); with ``skip_bad_images`` they are left out with a ``SkippedImagesWarning``.
    """
    files = listing(source)
    key = cache_key(source, settings, files)
    slot = slot_path(source, settings)
    cached = _read(slot, key)
    if cached is None:
        cached = _build(source, settings, slot, key, progress)
    if cached.skipped:
        _report_skipped(source, cached.skipped, skip_bad_images)
    return cached


# ---------------------------------------------------------------- reading


def _read(slot: Path, key: str) -> CachedImages | None:
    """The entry of ``slot`` when it is whole and carries ``key``, else None."""
    try:
        manifest = json.loads(slot.with_suffix(".json").read_text())
        if manifest.get("format") != CACHE_FORMAT or manifest.get("key") != key:
            return None
        path = slot.parent / manifest["data"]
        counts = [int(c) for c in manifest["counts"]]
        skipped = [(str(p), str(r)) for p, r in manifest["skipped"]]
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if array.dtype != np.uint8 or list(array.shape) != manifest.get("shape"):
        return None
    if sum(counts) != array.shape[0]:
        return None
    return CachedImages(torch.from_numpy(array), counts, skipped, path)


def _report_skipped(
    source: ImageFolderSource, skipped: list[tuple[str, str]], skip_bad_images: bool
) -> None:
    first = ", ".join(f"{rel} ({why})" for rel, why in skipped[:SHOWN])
    more = f" and {len(skipped) - SHOWN} others" if len(skipped) > SHOWN else ""
    where = f"{len(skipped)} image(s) of {source.describe} cannot be decoded: {first}{more}"
    if not skip_bad_images:
        raise DataError(
            f"{where}; replace or delete them (paths relative to {source.root}), or set "
            f"skip_bad_images to leave them out"
        )
    warnings.warn(f"{where}; left out (skip_bad_images)", SkippedImagesWarning, stacklevel=4)


# ---------------------------------------------------------------- building


class _Target:
    """Where decoded images go: a temporary memory-mapped .npy beside the cache entry, or, when
    the cache cannot be written, an array in memory."""

    def __init__(self, slot: Path, key: str, shape: tuple[int, ...]) -> None:
        self.final = slot.parent / f"{slot.name}-{key[:16]}.npy"
        self.tmp: Path | None = self.final.with_name(f".{self.final.name}.{unique_suffix()}")
        try:
            slot.parent.mkdir(parents=True, exist_ok=True)
            _remove_orphans(slot)
            self.array = np.lib.format.open_memmap(self.tmp, "w+", np.uint8, shape)
            _reserve(self.tmp)
        except OSError as exc:
            self.discard()
            _warn_unwritable(slot.parent, exc)
            self.tmp = None
            self.array = np.empty(shape, np.uint8)

    def shrink(self, keep: np.ndarray) -> None:
        """Keep the rows where ``keep`` (bool [N]) is True, in order."""
        shape = (int(keep.sum()), *self.array.shape[1:])
        if self.tmp is None:
            self.array = self.array[keep]
            return
        old_tmp, old = self.tmp, self.array
        self.tmp = self.final.with_name(f".{self.final.name}.{unique_suffix()}")
        self.array = np.lib.format.open_memmap(self.tmp, "w+", np.uint8, shape)
        done = 0
        for start in range(0, old.shape[0], 1024):
            rows = old[start : start + 1024][keep[start : start + 1024]]
            self.array[done : done + rows.shape[0]] = rows
            done += rows.shape[0]
        del old
        old_tmp.unlink(missing_ok=True)

    def commit(self) -> Path | None:
        """Flush the data to disk and rename it into place; the final path, or None when the
        images stay in memory (the write failed: warned)."""
        if self.tmp is None:
            return None
        try:
            self.array.flush()
            fd = os.open(self.tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.tmp, self.final)
            self.tmp = None
            return self.final
        except OSError as exc:
            _warn_unwritable(self.final.parent, exc)
            pixels = np.array(self.array)  # keep the pixels before the file goes
            self.discard()
            self.array = pixels
            return None

    def discard(self) -> None:
        if self.tmp is not None:
            self.array = None  # type: ignore[assignment]  # unmap before removing
            try:
                self.tmp.unlink(missing_ok=True)
            except OSError:
                pass  # never created (the folder is not there or not a folder)
            self.tmp = None


def _build(
    source: ImageFolderSource,
    settings: CacheSettings,
    slot: Path,
    key: str,
    progress: bool | None,
) -> CachedImages:
    paths = [source.root / rel for files in source.files for rel in files]
    channels = settings.channels or auto_channels(paths)
    geometry = Geometry(settings.size, channels, settings.resize_ratio)
    target = _Target(slot, key, (len(paths), channels, settings.size, settings.size))
    try:
        bad = decode_into(
            target.array, paths, geometry, progress=progress, description=f"decoding {source.kind}"
        )
        rels = [rel for files in source.files for rel in files]
        skipped = [(rels[i], why) for i, why in bad]
        counts = [len(f) for f in source.files]
        if bad:
            keep = np.ones(len(paths), dtype=bool)
            keep[[i for i, _ in bad]] = False
            bounds = np.cumsum([0, *counts])
            counts = [int(keep[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:])]
            target.shrink(keep)
        path = target.commit()
    except BaseException:
        target.discard()
        raise
    if path is None:
        return CachedImages(torch.from_numpy(target.array), counts, skipped, None)
    manifest = {
        "format": CACHE_FORMAT,
        "key": key,
        "data": path.name,
        "shape": [sum(counts), channels, settings.size, settings.size],
        "classes": list(source.classes),
        "counts": counts,
        "skipped": skipped,
        "source": str(source.root),
        "geometry": geometry.describe(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        write_text_atomic(slot.with_suffix(".json"), json.dumps(manifest))
    except OSError as exc:
        _warn_unwritable(slot.parent, exc)
    for old in slot.parent.glob(f"{slot.name}-*.npy"):
        if old != path:
            old.unlink(missing_ok=True)  # a reader that mapped it keeps its pages
    fsync_dir(slot.parent)
    cached = _read(slot, key)
    if cached is None:  # the manifest could not be written: use the data file as it is
        array = np.load(path, mmap_mode="c", allow_pickle=False)
        cached = CachedImages(torch.from_numpy(array), counts, skipped, path)
    return cached


def auto_channels(paths: Sequence[Path]) -> int:
    """1 when every image is stored grey (read from the headers), else 3; an unreadable
    header counts as colour (the decoding reports the file)."""

    def grey(path: Path) -> bool:
        try:
            return is_grey(path)
        except Exception:  # noqa: BLE001 - a corrupt file is reported when it is decoded
            return False

    return 1 if paths and all(map_threads(grey, paths)) else 3


def _reserve(path: Path) -> None:
    """Allocate the blocks of ``path`` now, so that a full disk is an OSError here rather than
    a crash (SIGBUS) when the memory map is written."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - not on Linux
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno in (95, 22):  # EOPNOTSUPP, EINVAL: the file system cannot reserve
            return
        raise
    finally:
        os.close(fd)


def _remove_orphans(slot: Path) -> None:
    """Remove temporary data files of ``slot`` whose writer process is gone (a killed build)."""
    for tmp in slot.parent.glob(f".{slot.name}-*.npy.*"):
        try:
            pid = int(tmp.name.rsplit(".", 1)[1].split("-")[0])
        except (IndexError, ValueError):
            continue
        if pid == os.getpid() or _alive(pid):
            continue
        tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _warn_unwritable(folder: Path, exc: OSError) -> None:
    warnings.warn(
        f"cannot write the decoded-image cache in {folder} ({exc}); the decoded images are "
        f"used but will be decoded again next time. Set HYPERMAML_CACHE to a writable folder "
        f"with room for them to keep them",
        CacheWarning,
        stacklevel=5,
    )
