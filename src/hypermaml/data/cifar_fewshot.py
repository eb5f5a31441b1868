"""Few-shot splits of CIFAR-100 (32x32 RGB, 600 images per class: its 500 train + 100 test).

- ``fc100`` (Oreshkin et al. 2018): split by superclass, 12 / 4 / 4 superclasses = 60 / 20 / 20
  classes; within a split, the superclasses in split-file order, each one's five classes sorted
  by name.
- ``cifar_fs`` (Bertinetto et al. 2019): 64 / 16 / 20 classes, in split-file order.

Read from the official archive through ``cifar.load_cifar`` (fine labels; the superclass of each
class is taken from the CIFAR-FS files, which list all 100 with their superclasses). Within a
class the images are the archive's train images then its test images, in archive order.
Normalised with the ImageNet mean and std like the other RGB datasets, so that a model trained
on FC100 meets mini-ImageNet with the same input statistics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import DataError
from .cifar import ARCHIVES, load_cifar
from .class_images import IMAGENET_NORMALISATION, ClassImages
from .files import replace_hint
from .image_tree import shown
from .split_files import (
    MINI_IMAGES_PER_CLASS,
    cifar100_superclasses,
    cifar_fs_classes,
    fc100_superclasses,
)

IMAGE_SIZE = 32
IMAGES_PER_CLASS = MINI_IMAGES_PER_CLASS  # 600, as mini-ImageNet


def split_classes(name: str, split: str) -> list[str]:
    """The CIFAR-100 fine class names of ``split`` of ``name`` ("fc100" or "cifar_fs")."""
    if name == "fc100":
        table = cifar100_superclasses()
        return [c for superclass in fc100_superclasses(split) for c in table[superclass]]
    return [c for _, c in cifar_fs_classes(split)]


def cifar_fewshot_split(root: Path, name: str, split: str) -> ClassImages:
    """``split`` of ``name`` ("fc100" or "cifar_fs"): uint8 images [n_classes * 600, 3, 32, 32]."""
    images, labels, fine_names = load_cifar(root, "cifar100", ("train", "test"))
    classes = split_classes(name, split)
    index = {n: i for i, n in enumerate(fine_names)}
    path = root / ARCHIVES["cifar100"].relpath
    missing = [c for c in classes if c not in index]
    if missing:
        raise DataError(
            f"{path} has no class {shown(missing)} of the {name} {split} split; "
            f"{replace_hint(path, ARCHIVES['cifar100'])}"
        )
    rows = [torch.nonzero(labels == index[c]).flatten() for c in classes]
    counts = [len(r) for r in rows]
    if any(c != IMAGES_PER_CLASS for c in counts):
        raise DataError(
            f"{path}: the {name} {split} classes hold {min(counts)} to {max(counts)} images, "
            f"expected {IMAGES_PER_CLASS} each; {replace_hint(path, ARCHIVES['cifar100'])}"
        )
    flat = images[torch.cat(rows)]  # uint8, classes one after another
    return ClassImages.from_counts(name, split, flat, counts, classes, IMAGENET_NORMALISATION)
