"""Small generated image trees in the real on-disk layouts of CUB-200-2011, mini-ImageNet (packed
and ILSVRC-2012) and an image folder, for the natural-image loaders' tests.

The class names are the real ones (read from the shipped split files); the images are tiny
(10x12 pixels) and few per class. Every image is one flat colour, so that a test can tell which
file a decoded image came from: ``colour(seed)`` is the colour of the image written with
``seed``.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from hypermaml.data.split_files import SPLITS, cub_classes, mini_imagenet_files


def colour(seed: int) -> tuple[int, int, int]:
    """A colour far enough from its neighbours to survive JPEG and resizing (+-8)."""
    return ((seed * 37) % 200 + 20, (seed * 91) % 200 + 20, (seed * 53) % 200 + 20)


def write_image(path: Path, seed: int, size: tuple[int, int] = (12, 10), **kwargs) -> Path:
    """A ``size`` (width, height) image of ``colour(seed)``, in the format of ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour(seed)).save(path, **kwargs)
    return path


def decoded_colour(image) -> tuple[int, int, int]:
    """The mean colour of a decoded uint8 image [3, H, W] (tensor or array)."""
    return tuple(int(round(float(v))) for v in np.asarray(image, dtype=float).mean((1, 2)))


def close(a, b, tolerance: int = 8) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b))


def cub_all_classes() -> list[str]:
    return sorted(c for split in SPLITS for c in cub_classes(split))


def cub_count(index: int) -> int:
    """Images of the ``index``-th CUB class (sorted) in the fixture: 2 to 4 (ragged)."""
    return 2 + index % 3


def make_cub(data_root: Path) -> Path:
    """``data_root/CUB_200_2011`` with all 200 class folders, ``cub_count(i)`` JPEGs each, and
    ``classes.txt`` / ``images.txt`` as in the official archive. Image j of class i has colour
    ``colour(1000 * i + j)``."""
    top = data_root / "CUB_200_2011"
    classes, images, n = [], [], 0
    for i, name in enumerate(cub_all_classes()):
        classes.append(f"{i + 1} {name}")
        for j in range(cub_count(i)):
            rel = f"{name}/{name[4:]}_{j:04d}_{i}.jpg"
            write_image(top / "images" / rel, 1000 * i + j, quality=95)
            n += 1
            images.append(f"{n} {rel}")
    (top / "classes.txt").write_text("\n".join(classes) + "\n")
    (top / "images.txt").write_text("\n".join(images) + "\n")
    return top


def make_cub_archive(data_root: Path, tree_root: Path) -> tuple[Path, str]:
    """``data_root/CUB_200_2011.tgz`` of the tree at ``tree_root/CUB_200_2011`` (plus the
    archive's top-level ``attributes.txt``); returns (path, its md5)."""
    (tree_root / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    archive = data_root / "CUB_200_2011.tgz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tree_root / "CUB_200_2011", "CUB_200_2011")
        tar.add(tree_root / "attributes.txt", "attributes.txt")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def mini_subset(per_class: int) -> dict[str, dict[str, list[str]]]:
    """split -> synset -> its first ``per_class`` file names in the real CSVs."""
    return {
        split: {s: names[:per_class] for s, names in mini_imagenet_files(split).items()}
        for split in SPLITS
    }


def mini_seed(filename: str) -> int:
    """The colour seed of the mini-ImageNet image ``filename`` in both fixtures."""
    synset_index = int(filename[1:9]) % 997
    return 20 * synset_index + int(filename[9:-4])


def make_packed_mini(data_root: Path, subset: dict) -> Path:
    """``data_root/mini_imagenet/images/<name>.jpg`` for every file of ``subset``."""
    folder = data_root / "mini_imagenet" / "images"
    for split in subset.values():
        for names in split.values():
            for name in names:
                write_image(folder / name, mini_seed(name), quality=95)
    return folder


def ilsvrc_ids(count: int) -> list[int]:
    """Numeric ids of a synset's files whose text order differs from their numeric order."""
    return [7 + 3 * j for j in range(count)]  # 7, 10, 13, ...: "10" < "7" as text


def make_ilsvrc(data_root: Path, subset: dict) -> Path:
    """``data_root/ILSVRC2012_train/<synset>/<synset>_<id>.JPEG``: as many files per synset as
    the largest image number of ``subset`` needs; the k-th by numeric id (counting from 1)
    has the colour of mini-ImageNet image number k."""
    folder = data_root / "ILSVRC2012_train"
    for split in subset.values():
        for synset, names in split.items():
            needed = max(int(n[9:-4]) for n in names)
            for k, number in enumerate(ilsvrc_ids(needed), start=1):
                name = f"{synset}{k:08d}.jpg"
                write_image(folder / synset / f"{synset}_{number}.JPEG", mini_seed(name),
                            format="JPEG", quality=95)  # fmt: skip
    return folder
