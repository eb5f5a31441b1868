"""The class splits of the natural-image benchmarks, shipped with the package and pinned by sha256.

| folder (``data/splits/``)| origin (the LICENSE beside each)                   | classes         |
|--------------------------|-----------------------------------------------------|-----------------|
| ``cub/*.json``           | tristandeleu/pytorch-meta@d55d89e (MIT), CloserLook | 100 / 50 / 50   |
| ``mini_imagenet/*.csv``  | twitter/meta-learning-lstm@0df7fc7 (MIT), Ravi      | 64 / 16 / 20    |
| ``fc100/*.json``         | pytorch-meta (MIT): superclasses, Oreshkin et al.   | 12 / 4 / 4 super|
| ``cifar_fs/*.json``      | pytorch-meta (MIT): [superclass, class], Bertinetto | 64 / 16 / 20    |

A file that differs from the one shipped (edited, cut short) is refused, never used for the
classes that remain.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import defaultdict
from importlib.resources import files
from importlib.resources.abc import Traversable

from ..errors import DataError

SPLITS = ("train", "val", "test")
FOLDER = files("hypermaml.data") / "splits"
SHA256 = {
    "cub/train.json": "ec90b228abb6100266ec7efd5513ec62d42c2507ccb366f25c42debfd2b5da2e",
    "cub/val.json": "fff92a7293e7e529185a3d2be7d6ec3956fafe916996668384d7bc5d798b8903",
    "cub/test.json": "41c79218a7bd4c2f805623e52e4fa9653e28e063638e8121efcd81183cf7ecc5",
    "mini_imagenet/train.csv": "498519cd8e49ce97ed26a4a3638966698ae41ab35e9c68538319fc9b46ba7d2f",
    "mini_imagenet/val.csv": "5658a59921ca027ee76af92949869c5d6f41d77592ff3b18db325a9d10c893b9",
    "mini_imagenet/test.csv": "2b7cfa78342995761a572a8158e539bc4e0a80f9bbd7d00c1e17a460fbbb93fa",
    "fc100/train.json": "a19e219adef452c071eb09d14758a9c45562643b9aafa38826e679ed285e117b",
    "fc100/val.json": "6d228dac7040959f0c2f0385c53c2cd9a5369ba9eefd1b7cdceecb47041598c4",
    "fc100/test.json": "d2cf86db6ec0250993b18cb78ebde10758f06eaaaff1611390e4442ee7c6fc41",
    "cifar_fs/train.json": "e0feef3aef13fc7320d5deef5ae77d91edd28041d9a173939ec48cea68135ef0",
    "cifar_fs/val.json": "d9d6e267b5dad5c2267ff7dd98ebb18bb016f7929b56839422bb34fb53bcb3ef",
    "cifar_fs/test.json": "e199c74ef4f014ea3f74da1b6cf74795d32747183426c2a7e6ee4308d3bf47e3",
}
SPLIT_CLASSES = {
    "cub": {"train": 100, "val": 50, "test": 50},
    "mini_imagenet": {"train": 64, "val": 16, "test": 20},
    "fc100": {"train": 60, "val": 20, "test": 20},
    "cifar_fs": {"train": 64, "val": 16, "test": 20},
}
"""Classes of each split (FC100: the fine classes of its 12 / 4 / 4 superclasses)."""
MINI_IMAGES_PER_CLASS = 600
_FIX = "reinstall hypermaml to restore the file"


def split_path(relpath: str) -> Traversable:
    """The shipped file ``relpath`` (e.g. "cub/train.json")."""
    return FOLDER.joinpath(*relpath.split("/"))


def _read(relpath: str) -> bytes:
    """The bytes of a shipped split file, refused unless they have the pinned sha256."""
    path = split_path(relpath)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the split file {path} ({exc}); {_FIX}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[relpath]:
        raise DataError(
            f"{path} differs from the split file hypermaml ships (sha256 {digest[:16]}..., "
            f"expected {SHA256[relpath][:16]}...); {_FIX}"
        )
    return raw


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {list(SPLITS)}")


def cub_classes(split: str) -> list[str]:
    """The CUB class folder names of ``split`` (e.g. "001.Black_footed_Albatross")."""
    _check_split(split)
    return [str(c) for c in json.loads(_read(f"cub/{split}.json"))]


def mini_imagenet_files(split: str) -> dict[str, list[str]]:
    """synset -> its file names (``n0153282900000005.jpg``) in the CSV's order (the classes in
    order of first appearance, 600 files each).

    The name is the synset and the 1-based index of the image among that synset's ILSVRC-2012
    training JPEGs sorted by numeric id (``image_number``)."""
    _check_split(split)
    text = _read(f"mini_imagenet/{split}.csv").decode()
    out: dict[str, list[str]] = defaultdict(list)
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        filename, synset = row
        out[synset].append(filename)
    return dict(out)


def image_number(filename: str) -> int:
    """The 1-based image number in a mini-ImageNet file name: ``n0153282900000005.jpg`` -> 5.

    CloserLook's ``write_miniImagenet_filelist.py`` maps it to the ILSVRC file
    ``sorted_by_id(<synset> folder)[int(name[-9:-4]) - 1]``; the CSVs' numbers run 1..1300, so
    the whole number and its last five digits agree."""
    return int(filename[9:-4])


def fc100_superclasses(split: str) -> list[str]:
    """The CIFAR-100 superclass names of FC100's ``split``."""
    _check_split(split)
    return [str(c) for c in json.loads(_read(f"fc100/{split}.json"))]


def cifar_fs_classes(split: str) -> list[tuple[str, str]]:
    """(superclass, class) of each CIFAR-FS class of ``split``."""
    _check_split(split)
    return [(str(a), str(b)) for a, b in json.loads(_read(f"cifar_fs/{split}.json"))]


def cifar100_superclasses() -> dict[str, list[str]]:
    """superclass -> its five fine class names, sorted (CIFAR-100's hierarchy, read from the
    CIFAR-FS files, which list every class with its superclass)."""
    out: dict[str, list[str]] = defaultdict(list)
    for split in SPLITS:
        for superclass, name in cifar_fs_classes(split):
            out[superclass].append(name)
    return {k: sorted(v) for k, v in out.items()}
