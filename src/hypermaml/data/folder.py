"""Any folder of images as a few-shot dataset: ``ROOT/<class>/<image>``, split by class.

The classes go to train / val / test by a split file, a JSON object
``{"train": [...], "val": [...], "test": [...]}`` of class folder names (classes it does not name
are left out), or by seeded fractions: the class folders sorted by name, shuffled by
``random.Random(seed)``, the first ``fractions[0]`` of them to train, the next
``fractions[1]`` to val, the rest to test (each split's classes then sorted by name). Counts are
rounded by largest remainder, and a split given a fraction above 0 must get a class.

Images are decoded through the cache (``image_cache.py``) with the geometry of ``FolderSpec``.
A folder that needs no resizing is read pixel for pixel: with ``resize_ratio`` 1 the shorter
side is resized to ``size`` itself, so ``size`` x ``size`` images pass unchanged (e.g. 28x28
PNGs read with ``size=28, resize_ratio=1``). RGB images are normalised with the ImageNet mean
and std by the episode sampler, grey ones not at all.
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import DataError
from .image_cache import CacheSettings, SkippedImagesWarning, auto_channels, listing
from .image_splits import SplitSource
from .image_tree import class_folders, image_files, shown
from .split_files import SPLITS

Channels = Literal["auto", "rgb", "grey"]
_CHANNELS = {"auto": None, "rgb": 3, "grey": 1}


@dataclass(frozen=True)
class FolderSpec:
    """The ``folder`` dataset: where the images are, how classes are split and images read.

    ``root``: the folder of class folders (a relative path is taken under the data
    directory). ``split_file``: a JSON split (see the module doc; relative: under ``root``), or
    None to split by ``fractions`` (train, val, test; they sum to 1) with ``seed``. ``size``:
    images are ``size`` x ``size``. ``channels``: "rgb", "grey", or "auto" (RGB unless every
    image is stored grey). ``resize_ratio``: the shorter side is resized to
    ``round(size * resize_ratio)`` before the centre crop (8/7: the benchmarks' evaluation
    transform; 1: none cut off).
    ``skip_bad_images``: leave out unreadable images and empty classes with a warning
    instead of refusing them.
    """

    root: str | Path
    split_file: str | Path | None = None
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    seed: int = 0
    size: int = 84
    channels: Channels = "auto"
    resize_ratio: float = 8 / 7
    skip_bad_images: bool = False

    def __post_init__(self) -> None:
        fractions = tuple(float(f) for f in self.fractions)
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise DataError(
                f"folder fractions must be three numbers >= 0 (train, val, test) summing to 1, "
                f"got {list(self.fractions)}"
            )
        object.__setattr__(self, "fractions", fractions)
        if self.channels not in _CHANNELS:
            raise DataError(
                f"folder channels must be one of {list(_CHANNELS)}, got {self.channels!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise DataError(f"folder size must be an integer >= 1, got {self.size!r}")
        if not self.resize_ratio >= 1:
            raise DataError(f"folder resize_ratio must be >= 1, got {self.resize_ratio!r}")

    def resolved_root(self, data_root: Path) -> Path:
        root = Path(self.root).expanduser()
        return root if root.is_absolute() else data_root / root

    def settings(self) -> CacheSettings:
        return CacheSettings(self.size, _CHANNELS[self.channels], self.resize_ratio)


def folder_source(spec: FolderSpec, data_root: Path) -> SplitSource:
    """The images of ``spec``'s folder, classes ordered by split (train, val, test)."""
    root = spec.resolved_root(data_root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist; set the folder root to a folder "
                        f"of class folders (ROOT/<class>/<image>)")  # fmt: skip
    present = class_folders(root)
    files = {c: [f"{c}/{name}" for name in image_files(root / c)] for c in present}
    empty = [c for c in present if not files[c]]
    if empty:
        message = f"{len(empty)} class folder(s) of {root} hold no image: {shown(empty)}"
        if not spec.skip_bad_images:
            raise DataError(f"{message}; add images or remove them, or set skip_bad_images")
        warnings.warn(f"{message}; left out", SkippedImagesWarning, stacklevel=2)
    classes = [c for c in present if files[c]]
    if spec.split_file is not None:
        splits = _read_split_file(spec, root, classes, empty)
    else:
        splits = split_by_fractions(classes, spec.fractions, spec.seed, root)
    return SplitSource.ordered("folder", root, splits, files, f"image folder {root}")


def split_by_fractions(
    classes: list[str], fractions: tuple[float, float, float], seed: int, root: Path
) -> dict[str, list[str]]:
    """train / val / test class lists (see the module doc)."""
    order = sorted(classes)
    random.Random(seed).shuffle(order)
    n = len(order)
    exact = [f * n for f in fractions]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    short = [s for s, f, c in zip(SPLITS, fractions, counts) if f > 0 and c == 0]
    if short:
        raise DataError(
            f"{root} has {n} non-empty class folders, too few to give the {', '.join(short)} "
            f"split a class with fractions {list(fractions)}; add classes or use a split file"
        )
    bounds = [0, counts[0], counts[0] + counts[1], n]
    return {s: sorted(order[bounds[i] : bounds[i + 1]]) for i, s in enumerate(SPLITS)}


def _read_split_file(
    spec: FolderSpec, root: Path, classes: list[str], empty: list[str]
) -> dict[str, list[str]]:
    path = Path(spec.split_file).expanduser()  # type: ignore[arg-type]
    path = path if path.is_absolute() else root / path
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the split file {path} as JSON ({exc}); fix the file or "
                        f"give another one") from exc  # fmt: skip
    if (
        not isinstance(raw, dict)
        or sorted(raw) != sorted(SPLITS)
        or not all(isinstance(v, list) and all(isinstance(c, str) for c in v) for v in raw.values())
    ):
        raise DataError(
            f'{path} must be a JSON object with the lists of class names "train", "val" '
            f'and "test"; fix the file'
        )
    named = [c for s in SPLITS for c in raw[s]]
    twice = sorted({c for c in named if named.count(c) > 1})
    if twice:
        raise DataError(f"{path} names {shown(twice)} in more than one split or twice; fix it")
    known = set(classes)
    missing = [c for c in named if c not in known and c not in empty]
    if missing:
        raise DataError(
            f"{path} names {len(missing)} class(es) that are not folders of {root}: "
            f"{shown(missing)}; fix the split file or add the folders"
        )
    return {s: [c for c in raw[s] if c in known] for s in SPLITS}


def folder_channels(spec: FolderSpec, data_root: Path) -> int:
    """The channels of the folder's images: as set, or for "auto" 1 when every image file is
    stored grey (read from the headers), else 3."""
    fixed = _CHANNELS[spec.channels]
    if fixed is not None:
        return fixed
    source = folder_source(spec, data_root).source
    listing(source)  # a DataError naming a file that cannot be read
    return auto_channels([source.root / rel for files in source.files for rel in files])
