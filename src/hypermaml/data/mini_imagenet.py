"""mini-ImageNet (Vinyals et al. 2016; Ravi & Larochelle's split): 100 ImageNet classes x 600.

Classes and images come from the shipped Ravi & Larochelle CSVs (64 / 16 / 20 classes, 600
file names each, ``n0153282900000005.jpg``). The images are read from either of the two usual
sources, looked for in this order under the data directory:

- packed: ``<data dir>/mini_imagenet/images/`` holding the 60,000 named JPEGs;
- ILSVRC-2012: ``<data dir>/ILSVRC2012_train/<synset>/<synset>_<id>.JPEG``, the official
  training tree. Image ``n0153282900000005.jpg`` is the 5th JPEG of synset ``n01532829``
  counting from 1 in the order of the numeric ``<id>`` (CloserLook's
  ``write_miniImagenet_filelist.py``: ``sorted_by_id[int(name[-9:-4]) - 1]``; the CSV numbers
  run from 1 to 1,300, so the whole number and its last five digits agree).

The images of a class are in CSV order (their numbers rising).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DataError
from .image_splits import SplitSource
from .image_tree import class_folders, image_files, shown
from .split_files import MINI_IMAGES_PER_CLASS, SPLITS, image_number, mini_imagenet_files

PACKED = "mini_imagenet/images"
ILSVRC = "ILSVRC2012_train"
IMAGE_SIZE = 84
_SYNSET = re.compile(r"n\d{8}")
_ILSVRC_NAME = re.compile(r"(n\d{8})_(\d+)\.jpe?g", re.IGNORECASE)


def find_source(root: Path, source: str | Path | None = None) -> tuple[str, Path]:
    """("packed" or "ilsvrc", folder): ``source`` when given, else the first of the two
    layouts present under the data directory ``root``."""
    candidates = (
        [Path(source).expanduser()] if source is not None else [root / PACKED, root / ILSVRC]
    )
    for folder in candidates:
        if (folder / "images").is_dir() and _layout(folder / "images") == "packed":
            return "packed", folder / "images"
        if folder.is_dir():
            layout = _layout(folder)
            if layout is not None:
                return layout, folder
    looked = " or ".join(str(c) for c in candidates)
    raise DataError(
        f"no mini-ImageNet images in {looked}; put the 60,000 named JPEGs "
        f"(n0153282900000005.jpg, ...) in {root / PACKED}, or the ILSVRC-2012 training tree "
        f"(<synset>/<synset>_<id>.JPEG) at {root / ILSVRC}"
    )


def _layout(folder: Path) -> str | None:
    """Which layout ``folder`` has: "packed" (named JPEGs), "ilsvrc" (synset folders) or None."""
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.name.endswith(".jpg") and _SYNSET.match(entry.name):
                    return "packed"
                if _SYNSET.fullmatch(entry.name) and entry.is_dir():
                    return "ilsvrc"
    except OSError as exc:
        raise DataError(
            f"cannot list {folder} ({exc.strerror or exc}); check the path and its permissions"
        ) from exc
    return None


def mini_imagenet_source(root: Path, source: str | Path | None = None) -> SplitSource:
    """The mini-ImageNet images of the three splits, classes in CSV order; a DataError naming
    what is missing."""
    layout, folder = find_source(root, source)
    per_split = {split: mini_imagenet_files(split) for split in SPLITS}
    wanted = {synset: names for split in per_split.values() for synset, names in split.items()}
    if layout == "packed":
        files = _packed_files(folder, wanted)
    else:
        files = _ilsvrc_files(folder, wanted)
    splits = {split: list(classes) for split, classes in per_split.items()}
    describe = f"mini-ImageNet ({layout}) at {folder}"
    return SplitSource.ordered(f"mini_imagenet_{layout}", folder, splits, files, describe)


def _packed_files(folder: Path, wanted: dict[str, list[str]]) -> dict[str, list[str]]:
    present = set(image_files(folder))
    missing = [n for names in wanted.values() for n in names if n not in present]
    if missing:
        raise DataError(
            f"{folder} lacks {len(missing)} of the {len(wanted) * MINI_IMAGES_PER_CLASS} "
            f"mini-ImageNet images named by the split: {shown(missing)}; complete the folder "
            f"from your mini-ImageNet copy"
        )
    return wanted


def _ilsvrc_files(folder: Path, wanted: dict[str, list[str]]) -> dict[str, list[str]]:
    present = set(class_folders(folder))
    missing = [s for s in wanted if s not in present]
    if missing:
        raise DataError(
            f"the ILSVRC-2012 training tree {folder} lacks {len(missing)} of the 100 "
            f"mini-ImageNet synset folders: {shown(missing)}; use the complete training set"
        )
    files = {}
    for synset, names in wanted.items():
        by_id = sorted(image_files(folder / synset), key=lambda n: _numeric_id(folder, synset, n))
        needed = max(image_number(n) for n in names)
        if needed > len(by_id):
            raise DataError(
                f"{folder / synset} holds {len(by_id)} JPEGs, but the mini-ImageNet split "
                f"needs its image number {needed}; use the complete ILSVRC-2012 training set"
            )
        files[synset] = [f"{synset}/{by_id[image_number(n) - 1]}" for n in names]
    return files


def _numeric_id(folder: Path, synset: str, name: str) -> int:
    match = _ILSVRC_NAME.fullmatch(name)
    if match is None or match.group(1) != synset:
        raise DataError(
            f"{folder / synset / name} is not named {synset}_<number>.JPEG as in the ILSVRC-2012 "
            f"training set; move it out of the folder"
        )
    return int(match.group(2))
