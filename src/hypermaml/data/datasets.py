"""Named few-shot datasets: for each split, a uint8 tensor of images grouped by class.

| name        | train                                   | val                 | test               |
|-------------|-----------------------------------------|---------------------|--------------------|
| omniglot    | Vinyals train (characters x 4 rotations)| Vinyals val         | Vinyals test       |
| cross_char  | all Omniglot except Latin (1,597)       | EMNIST even ids (31)| EMNIST odd ids (31)|

and the natural-image datasets of ``natural.py``: ``cub``, ``mini_imagenet``, ``mini_to_cub``,
``fc100``, ``cifar_fs``, ``fc100_to_mini`` and ``folder`` (any folder of class folders).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from .class_images import ClassImages
from .emnist import EMNIST_SUBSET, load_emnist_subset
from .files import data_dir, replace_hint
from .folder import FolderSpec
from .natural import (
    NATURAL_DATASETS,
    NATURAL_IMAGE_SHAPES,
    NATURAL_MIN_IMAGES,
    NATURAL_N_CLASSES,
    LoadOptions,
    natural_image_shape,
    natural_split,
)
from .omniglot import SPLIT_CLASSES, load_omniglot, read_split_file, split_file
from .omniglot import source_paths as omniglot_sources

DATASETS = ("omniglot", "cross_char", *NATURAL_DATASETS)
SPLITS = ("train", "val", "test")
IMAGES_PER_CLASS = {
    ("omniglot", "train"): 20, ("omniglot", "val"): 20, ("omniglot", "test"): 20,
    ("cross_char", "train"): 20, ("cross_char", "val"): 200, ("cross_char", "test"): 200,
}  # fmt: skip
"""Images of each class per split: 20 drawers of an Omniglot character, 200 EMNIST images
(the datasets of equal-sized classes whose files are on every machine; see
``MIN_IMAGES_PER_CLASS`` for all)."""
MIN_IMAGES_PER_CLASS = {**IMAGES_PER_CLASS, **NATURAL_MIN_IMAGES}
"""Images of the smallest class of each split, for every dataset but ``folder``: the largest
n_shot + n_query its tasks can have."""
N_CLASSES = {
    ("omniglot", "train"): SPLIT_CLASSES["train"], ("omniglot", "val"): SPLIT_CLASSES["val"],
    ("omniglot", "test"): SPLIT_CLASSES["test"],
    ("cross_char", "train"): 1597, ("cross_char", "val"): 31, ("cross_char", "test"): 31,
    **NATURAL_N_CLASSES,
}  # fmt: skip
"""Classes of each split (see the table above); a split that loads another count is refused."""
IMAGE_SHAPES = {"omniglot": (1, 28, 28), "cross_char": (1, 28, 28), **NATURAL_IMAGE_SHAPES}
"""(C, H, W) of each dataset's images (``folder``: given by its ``FolderSpec``)."""


def _check_size(data: ClassImages, source: str, fix: str) -> ClassImages:
    """``data`` when it has the classes and images per class of its split, else a DataError."""
    key = (data.name, data.split)
    expected, found = (N_CLASSES[key], IMAGES_PER_CLASS[key]), (data.n_classes, data.n_per_class)
    if found != expected:
        raise DataError(
            f"{data.name}/{data.split} read from {source} has {found[0]} classes of {found[1]} "
            f"images, expected {expected[0]} of {expected[1]}; {fix}"
        )
    return data


def _omniglot_files(root: Path) -> str:
    return " and ".join(str(path) for path in omniglot_sources(root))


def _omniglot_split(root: Path, split: str) -> ClassImages:
    omniglot = load_omniglot(root)
    index = omniglot.index()
    replace = f"replace {_omniglot_files(root)} with the official files"
    images, names = [], []
    for alphabet, character, degrees in read_split_file(split):
        if (alphabet, character) not in index:
            raise DataError(
                f"the Vinyals {split} split {split_file(split)} names {alphabet}/{character}, "
                f"which is not in Omniglot; {replace}"
            )
        chars = omniglot.images[index[(alphabet, character)]]
        images.append(torch.rot90(chars, k=degrees // 90, dims=(1, 2)))
        names.append(f"{alphabet}/{character}/rot{degrees:03d}")
    data = ClassImages.dense("omniglot", split, torch.stack(images)[:, :, None], names)
    source = f"{split_file(split)} and {_omniglot_files(root)}"
    return _check_size(data, source, f"reinstall hypermaml, or {replace}")


def _cross_char_split(root: Path, split: str) -> ClassImages:
    if split == "train":
        omniglot = load_omniglot(root)
        keep = [i for i, a in enumerate(omniglot.alphabet) if a != "Latin"]
        names = [f"{omniglot.alphabet[i]}/{omniglot.character[i]}" for i in keep]
        data = ClassImages.dense("cross_char", split, omniglot.images[keep][:, :, None], names)
        files = _omniglot_files(root)
        return _check_size(data, files, f"replace {files} with the official files")
    emnist = load_emnist_subset(root)
    ids = list(range(0 if split == "val" else 1, emnist.shape[0], 2))
    names = [f"emnist/{i}" for i in ids]
    data = ClassImages.dense("cross_char", split, emnist[ids][:, :, None], names)
    path = root / EMNIST_SUBSET.relpath
    return _check_size(data, str(path), replace_hint(path, EMNIST_SUBSET))


def check_dataset(name: str, split: str | None = None) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")


def image_shape(
    name: str, folder: FolderSpec | None = None, root: str | Path | None = None
) -> tuple[int, int, int]:
    """(C, H, W) of the images of few-shot dataset ``name`` (``folder``: of the folder that
    ``folder`` describes, under the data directory ``root``)."""
    check_dataset(name)
    if name in IMAGE_SHAPES:
        return IMAGE_SHAPES[name]
    return natural_image_shape(name, data_dir(root), LoadOptions(folder=folder))


def load_split(
    name: str,
    split: str,
    root: str | Path | None = None,
    *,
    folder: FolderSpec | None = None,
    source: str | Path | None = None,
    skip_bad_images: bool = False,
    progress: bool | None = None,
) -> ClassImages:
    """Load ``split`` of dataset ``name`` from the data directory (see ``files.data_dir``).

    For the natural-image datasets (``natural.py``): ``folder`` describes the ``folder``
    dataset; ``source`` is where the images of ``cub`` or ``mini_imagenet`` are when not in
    their standard places; ``skip_bad_images`` leaves out unreadable images with a warning
    instead of refusing them; ``progress`` shows the decoding progress bar (None: on a
    terminal). The images are decoded once into the cache (``image_cache.py``).
    """
    check_dataset(name, split)
    root = data_dir(root)
    if name in NATURAL_DATASETS:
        options = LoadOptions(source, folder, skip_bad_images, progress)
        return natural_split(name, split, root, options)
    if source is not None or folder is not None:
        raise DataError(f"{name} takes no image source or folder spec; leave them unset")
    loader = _omniglot_split if name == "omniglot" else _cross_char_split
    return loader(root, split)
