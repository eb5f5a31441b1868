"""Preparing a dataset ahead of a run (decoding it into the cache) and checking one, as reports.

``prepare(name, data_root)`` builds every decoded-image cache the dataset reads and loads each
split, so the first training run starts at once; ``check(name, data_root)`` reads only file
listings and image headers (``decode=True``: every image too, without writing a cache) and
reports the classes and images per split, the problems found, and the state of each cache.
Both take the options of ``load_split`` (``source``, ``folder``, ...). Neither prints: a
command prints ``report.lines()`` or writes ``report.to_dict()``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from .cache import cache_key, entry_path
from .datasets import SPLITS, check_dataset, load_split
from .files import data_dir
from .folder import FolderSpec
from .image_cache import (
    CacheSettings,
    ImageFolderSource,
    cache_state,
    load_or_build,
    slot_path,
)
from .image_tree import shown
from .images import DECODE_ERRORS, Geometry, decode_into, map_threads
from .natural import NATURAL_DATASETS, LoadOptions, cached_parts, split_part
from .omniglot import DECODE_VERSION, IMAGE_SIZE
from .omniglot import source_paths as omniglot_sources


@dataclass
class SplitSummary:
    """Classes and images of one split; ``per_class``: (min, median, max) images per class."""

    split: str
    classes: int
    images: int
    per_class: tuple[int, float, int]

    @classmethod
    def of(cls, split: str, counts: list[int]) -> SplitSummary:
        if not counts:
            return cls(split, 0, 0, (0, 0.0, 0))
        return cls(split, len(counts), sum(counts),
                   (min(counts), float(statistics.median(counts)), max(counts)))  # fmt: skip

    def line(self) -> str:
        low, mid, high = self.per_class
        return (f"{self.split}: {self.classes} classes, {self.images} images "
                f"({low}/{mid:g}/{high} per class, min/median/max)")  # fmt: skip


@dataclass
class CacheReport:
    """One cache: its state before and after, where it is, and how long it took."""

    label: str
    before: str
    after: str
    manifest: str | None
    images: int
    seconds: float


@dataclass
class PrepareReport:
    name: str
    splits: list[SplitSummary]
    caches: list[CacheReport]
    seconds: float

    def lines(self) -> list[str]:
        out = [f"{self.name}: prepared in {self.seconds:.1f} s"]
        out += [f"  cache {c.label}: {c.before} -> {c.after}, {c.images} images"
                + (f" ({c.manifest})" if c.manifest else "") for c in self.caches]  # fmt: skip
        return out + [f"  {s.line()}" for s in self.splits]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckReport:
    """``problems``: one line each (missing classes, unreadable files, ...); ``caches``: label
    -> "present", "stale", "missing" or "none" (read from its archive on every load)."""

    name: str
    splits: list[SplitSummary]
    problems: list[str] = field(default_factory=list)
    caches: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"{self.name}: " + ("ok" if self.ok else f"{len(self.problems)} problem(s)")]
        out += [f"  {s.line()}" for s in self.splits]
        out += [f"  cache {label}: {state}" for label, state in self.caches.items()]
        return out + [f"  problem: {p}" for p in self.problems]

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def prepare(
    name: str,
    data_root: str | Path | None = None,
    source: str | Path | None = None,
    *,
    folder: FolderSpec | None = None,
    skip_bad_images: bool = False,
    progress: bool | None = None,
) -> PrepareReport:
    """Decode ``name`` into its caches (those already valid are kept) and load every split;
    a DataError as ``load_split`` raises it."""
    check_dataset(name)
    root, start = data_dir(data_root), time.perf_counter()
    options = LoadOptions(source, folder, skip_bad_images, progress)
    caches = []
    if name in NATURAL_DATASETS:
        skip = skip_bad_images or (folder is not None and folder.skip_bad_images)
        for part in cached_parts(name, root, options):
            src, settings = part.split_source.source, part.settings
            before, t0 = cache_state(src, settings), time.perf_counter()
            cached = load_or_build(src, settings, skip_bad_images=skip, progress=progress)
            caches.append(CacheReport(part.label, before, cache_state(src, settings),
                                      _manifest(src, settings), int(cached.images.shape[0]),
                                      time.perf_counter() - t0))  # fmt: skip
    splits = []
    for split in SPLITS:
        data = load_split(name, split, root, folder=folder, source=source,
                          skip_bad_images=skip_bad_images, progress=progress)  # fmt: skip
        splits.append(SplitSummary.of(split, list(data.counts)))
    return PrepareReport(name, splits, caches, time.perf_counter() - start)


def check(
    name: str,
    data_root: str | Path | None = None,
    source: str | Path | None = None,
    *,
    folder: FolderSpec | None = None,
    decode: bool = False,
    progress: bool | None = None,
) -> CheckReport:
    """What ``name`` holds and what is wrong with it, without building any cache.

    Folder-of-images datasets are listed (classes, files) and every image header is read;
    with ``decode`` every image is decoded too (finding truncated files, at the cost of a full
    decoding). The other datasets are loaded.
    """
    check_dataset(name)
    root = data_dir(data_root)
    report = CheckReport(name, [])
    options = LoadOptions(source, folder)
    for split in SPLITS:
        try:
            planned = split_part(name, split, root, options) if name in NATURAL_DATASETS else None
            if planned is None:
                data = load_split(name, split, root, folder=folder, source=source)
                counts = list(data.counts)
            else:
                part, splits = planned
                first, stop = part.split_source.class_range(splits)
                counts = [len(f) for f in part.split_source.source.files[first:stop]]
        except DataError as exc:
            report.problems.append(f"{split}: {exc}")
            counts = []
        report.splits.append(SplitSummary.of(split, counts))
    if name in ("omniglot", "cross_char"):
        report.caches["omniglot"] = _omniglot_cache_state(root)
    elif name in NATURAL_DATASETS:
        _check_images(name, root, options, decode, progress, report)
    if name in ("fc100", "cifar_fs", "fc100_to_mini"):
        report.caches["cifar100"] = "none"
    return report


def _check_images(
    name: str,
    root: Path,
    options: LoadOptions,
    decode: bool,
    progress: bool | None,
    report: CheckReport,
) -> None:
    """Add the cache states and the unreadable images of ``name``'s folder sources."""
    try:
        parts = cached_parts(name, root, options)
    except DataError:
        return  # already reported per split
    for part in parts:
        src, settings = part.split_source.source, part.settings
        try:
            report.caches[part.label] = cache_state(src, settings)
        except DataError as exc:
            report.caches[part.label] = "missing"
            report.problems.append(str(exc))
            continue
        bad = _unreadable(src, settings, decode, progress)
        if bad:
            rels = [f"{rel} ({why})" for rel, why in bad]
            report.problems.append(
                f"{len(bad)} unreadable image(s) in {src.describe}: {shown(rels, 3)}"
            )


def _unreadable(
    src: ImageFolderSource, settings: CacheSettings, decode: bool, progress: bool | None
) -> list[tuple[str, str]]:
    """(relative path, reason) of each image whose header (or, with ``decode``, whose
    pixels) cannot be read."""
    rels = [rel for files in src.files for rel in files]
    if not decode:

        def header(rel: str) -> str | None:
            from PIL import Image

            try:
                with Image.open(src.root / rel):
                    return None
            except DECODE_ERRORS as exc:
                return f"{type(exc).__name__}: {exc}"

        return [(r, why) for r, why in zip(rels, map_threads(header, rels)) if why]  # type: ignore[arg-type]
    geometry = Geometry(settings.size, settings.channels or 3, settings.resize_ratio)
    bad, chunk = [], 1024
    scratch = np.empty((chunk, geometry.channels, geometry.size, geometry.size), np.uint8)
    for start in range(0, len(rels), chunk):
        paths = [src.root / r for r in rels[start : start + chunk]]
        for i, why in decode_into(scratch, paths, geometry, progress=progress,
                                  description=f"checking {src.kind}"):  # fmt: skip
            bad.append((rels[start + i], why))
    return bad


def _manifest(src: ImageFolderSource, settings: CacheSettings) -> str | None:
    path = slot_path(src, settings).with_suffix(".json")
    return str(path) if path.is_file() else None


def _omniglot_cache_state(root: Path) -> str:
    try:
        sources = omniglot_sources(root)
        key = cache_key(f"omniglot{IMAGE_SIZE}", DECODE_VERSION, sources)
    except DataError:
        return "missing"
    return "present" if entry_path(f"omniglot{IMAGE_SIZE}", key).is_file() else "missing"
