"""Supervised image classification data: a labelled image set per (dataset, split).

| name          | train                  | test                   | images            | classes |
|---------------|------------------------|------------------------|-------------------|---------|
| fashion_mnist | 60,000 (6,000 / class) | 10,000 (1,000 / class) | 1 x 28 x 28, gray | 10      |
| cifar10       | 50,000 (5,000 / class) | 10,000 (1,000 / class) | 3 x 32 x 32, RGB  | 10      |
| cifar100      | 50,000 (500 / class)   | 10,000 (100 / class)   | 3 x 32 x 32, RGB  | 100     |

| omniglot      | 17 images / class      | the other 3 / class    | 1 x 28 x 28, gray | 4,112   |
| cross_char    | 17 images / class      | the other 3 / class    | 1 x 28 x 28, gray | 1,597   |
| cub           | all but 3 / class      | the last 3 / class     | 3 x 84 x 84, RGB  | 100     |
| mini_imagenet | 597 images / class     | the last 3 / class     | 3 x 84 x 84, RGB  | 64      |
| fc100         | 597 images / class     | the last 3 / class     | 3 x 32 x 32, RGB  | 60      |
| cifar_fs      | 597 images / class     | the last 3 / class     | 3 x 32 x 32, RGB  | 64      |

The last six are the *training classes* of the few-shot datasets of the same names (Vinyals
train with rotations; every Omniglot character but the Latin alphabet; the natural-image
datasets' training splits), for pre-training an encoder before meta-training (the HyperResNets
paper's MAML recipe, and the pre-trained start of the mini-ImageNet models); their test split
holds other images of the same classes, never a validation or test class.
CIFAR-100 uses its 100 fine labels. There is no validation split: the papers report test accuracy
(the HyperResNets paper calls it "validation"); hold out part of train yourself if you need one.
Images stay uint8 in memory; ``augment.batches`` converts them to float one batch at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..errors import DataError
from .cifar import load_cifar
from .fashion_mnist import load_fashion_mnist
from .files import data_dir

FEW_SHOT_TRAINING_CLASSES = ("omniglot", "cross_char", "cub", "mini_imagenet", "fc100", "cifar_fs")
"""Few-shot datasets whose training classes can be classified (to pre-train an encoder)."""
CLASSIFICATION_DATASETS = ("fashion_mnist", "cifar10", "cifar100", *FEW_SHOT_TRAINING_CLASSES)
PRETRAIN_TEST_IMAGES = 3
"""Images per class held out as the test split of a few-shot dataset's training classes."""
CLASSIFICATION_SPLITS = ("train", "test")


@dataclass
class LabelledImages:
    """One split of a classification dataset.

    ``images``: uint8 [n, C, H, W]; ``labels``: int64 [n], values in ``range(len(class_names))``;
    ``class_names[k]`` names label k.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]

    def __post_init__(self) -> None:
        images, labels = self.images, self.labels
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [n, C, H, W], got {images.dtype} "
                             f"{tuple(images.shape)}")  # fmt: skip
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            raise ValueError(f"labels must be int64 [{images.shape[0]}], got {labels.dtype} "
                             f"{tuple(labels.shape)}")  # fmt: skip
        if len(self) and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < self.n_classes:
            raise ValueError(f"labels must lie in 0..{self.n_classes - 1}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]


def load_classification(
    name: str, split: Literal["train", "test"], root: str | Path | None = None
) -> LabelledImages:
    """Load ``split`` of classification dataset ``name`` from the data directory.

    ``root`` is resolved as in ``files.data_dir`` (``--data-dir``, ``$HYPERMAML_DATA``, default);
    missing files are downloaded there when the network allows, else a DataError names them.
    """
    if name not in CLASSIFICATION_DATASETS:
        raise DataError(
            f"unknown classification dataset {name!r}; "
            f"choose one of {list(CLASSIFICATION_DATASETS)}"
        )
    if split not in CLASSIFICATION_SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(CLASSIFICATION_SPLITS)}")
    root = data_dir(root)
    if name in FEW_SHOT_TRAINING_CLASSES:
        images, labels, class_names = _training_classes(name, split, root)
    elif name == "fashion_mnist":
        images, labels, class_names = load_fashion_mnist(root, split)
    else:
        images, labels, class_names = load_cifar(root, name, split)
    return LabelledImages(name, split, images, labels, class_names)


def _training_classes(
    name: str, split: str, root: Path
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The few-shot training classes of ``name`` as a labelled set (see the table above): of
    each class, all but its last ``PRETRAIN_TEST_IMAGES`` images for train, those for test."""
    from .datasets import load_split

    classes = load_split(name, "train", root)
    counts = torch.tensor(classes.counts)
    starts = classes.offsets[:-1]  # type: ignore[index]
    if split == "train":
        first, sizes = starts, (counts - PRETRAIN_TEST_IMAGES).clamp(min=0)
    else:
        first, sizes = (
            starts + (counts - PRETRAIN_TEST_IMAGES).clamp(min=0),
            counts.clamp(max=PRETRAIN_TEST_IMAGES),
        )
    rows = torch.cat([torch.arange(int(a), int(a) + int(n)) for a, n in zip(first, sizes)])
    labels = torch.arange(classes.n_classes).repeat_interleave(sizes)
    return classes.images[rows].contiguous(), labels, classes.class_names
