"""Named few-shot datasets: for each split, a uint8 tensor of images grouped by class.

| name        | train                                   | val                 | test               |
|-------------|-----------------------------------------|---------------------|--------------------|
| omniglot    | Vinyals train (characters x 4 rotations)| Vinyals val         | Vinyals test       |
| cross_char  | all Omniglot except Latin (1,597)       | EMNIST even ids (31)| EMNIST odd ids (31)|
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DataError
from .emnist import load_emnist_subset
from .files import data_dir
from .omniglot import load_omniglot, read_split_file

DATASETS = ("omniglot", "cross_char")
SPLITS = ("train", "val", "test")
IMAGES_PER_CLASS = {
    ("omniglot", "train"): 20, ("omniglot", "val"): 20, ("omniglot", "test"): 20,
    ("cross_char", "train"): 20, ("cross_char", "val"): 200, ("cross_char", "test"): 200,
}  # fmt: skip
"""Images of each class per split: 20 drawers of an Omniglot character, 200 EMNIST images."""
IMAGE_SHAPES = {"omniglot": (1, 28, 28), "cross_char": (1, 28, 28)}
"""(C, H, W) of each dataset's images."""


@dataclass
class ClassImages:
    """The images of one split: ``images`` uint8 [n_classes, n_per_class, channels, H, W]."""

    name: str
    split: str
    images: torch.Tensor
    class_names: list[str]

    @property
    def n_classes(self) -> int:
        return self.images.shape[0]

    @property
    def n_per_class(self) -> int:
        return self.images.shape[1]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.images.shape[2:])  # type: ignore[return-value]


def _omniglot_split(root: Path, split: str) -> ClassImages:
    omniglot = load_omniglot(root)
    index = omniglot.index()
    images, names = [], []
    for alphabet, character, degrees in read_split_file(split):
        if (alphabet, character) not in index:
            raise DataError(f"Vinyals {split} split names {alphabet}/{character}, not in Omniglot")
        chars = omniglot.images[index[(alphabet, character)]]
        images.append(torch.rot90(chars, k=degrees // 90, dims=(1, 2)))
        names.append(f"{alphabet}/{character}/rot{degrees:03d}")
    return ClassImages("omniglot", split, torch.stack(images)[:, :, None], names)


def _cross_char_split(root: Path, split: str) -> ClassImages:
    if split == "train":
        omniglot = load_omniglot(root)
        keep = [i for i, a in enumerate(omniglot.alphabet) if a != "Latin"]
        names = [f"{omniglot.alphabet[i]}/{omniglot.character[i]}" for i in keep]
        return ClassImages("cross_char", split, omniglot.images[keep][:, :, None], names)
    emnist = load_emnist_subset(root)
    ids = list(range(0 if split == "val" else 1, emnist.shape[0], 2))
    return ClassImages("cross_char", split, emnist[ids][:, :, None], [f"emnist/{i}" for i in ids])


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the images of few-shot dataset ``name``."""
    if name not in IMAGE_SHAPES:
        raise DataError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    return IMAGE_SHAPES[name]


def load_split(name: str, split: str, root: str | Path | None = None) -> ClassImages:
    """Load ``split`` of dataset ``name`` from the data directory (see ``files.data_dir``)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")
    root = data_dir(root)
    loader = _omniglot_split if name == "omniglot" else _cross_char_split
    return loader(root, split)
