"""The natural-image few-shot datasets by name, RGB and normalised with ImageNet's
mean and std (a grey ``folder`` is not normalised).

| name          | train                      | val                | test               | image  |
|---------------|----------------------------|--------------------|--------------------|--------|
| cub           | CUB, 100 classes           | CUB, 50            | CUB, 50            | 3x84x84|
| mini_imagenet | mini-ImageNet, 64 x 600    | 16 x 600           | 20 x 600           | 3x84x84|
| mini_to_cub   | all 100 mini-ImageNet      | CUB val (50)       | CUB test (50)      | 3x84x84|
| fc100         | CIFAR-100, 12 superclasses | 4 superclasses     | 4 superclasses     | 3x32x32|
| cifar_fs      | CIFAR-100, 64 classes      | 16                 | 20                 | 3x32x32|
| fc100_to_mini | FC100 train (60)           | mini val (16)      | mini test (20)     | 3x32x32|
| folder        | ``FolderSpec``: any ROOT/<class>/<image> tree, split by file or fractions  | |

``fc100_to_mini`` (the HyperResNets paper's Table 8, which does not give the image size) uses
32x32: FC100's own size, and the size the wide ResNets (WRN-16-4, WRN-28-4) of that table are
built for; mini-ImageNet is brought down to it by the same geometry as at 84 (shorter side to
37, centre 32). Upsampling CIFAR to 84 instead would invent no detail and cost about 7 times
the compute per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .cifar_fewshot import cifar_fewshot_split
from .class_images import ClassImages
from .cub import MIN_IMAGES_PER_CLASS as CUB_MIN_IMAGES
from .cub import cub_source
from .folder import FolderSpec, folder_channels, folder_source
from .image_cache import CacheSettings
from .image_splits import SplitSource, load_classes
from .mini_imagenet import mini_imagenet_source
from .split_files import MINI_IMAGES_PER_CLASS, SPLIT_CLASSES, SPLITS

NATURAL_DATASETS = (
    "cub", "mini_imagenet", "mini_to_cub", "fc100", "cifar_fs", "fc100_to_mini", "folder",
)  # fmt: skip
NATURAL_IMAGE_SHAPES = {
    "cub": (3, 84, 84), "mini_imagenet": (3, 84, 84), "mini_to_cub": (3, 84, 84),
    "fc100": (3, 32, 32), "cifar_fs": (3, 32, 32), "fc100_to_mini": (3, 32, 32),
}  # fmt: skip
"""(C, H, W) of each dataset's images (``folder``: from its ``FolderSpec``)."""
NATURAL_N_CLASSES = {
    **{("cub", s): n for s, n in SPLIT_CLASSES["cub"].items()},
    **{("mini_imagenet", s): n for s, n in SPLIT_CLASSES["mini_imagenet"].items()},
    ("mini_to_cub", "train"): 100, ("mini_to_cub", "val"): 50, ("mini_to_cub", "test"): 50,
    **{("fc100", s): n for s, n in SPLIT_CLASSES["fc100"].items()},
    **{("cifar_fs", s): n for s, n in SPLIT_CLASSES["cifar_fs"].items()},
    ("fc100_to_mini", "train"): 60, ("fc100_to_mini", "val"): 16, ("fc100_to_mini", "test"): 20,
}  # fmt: skip
"""Classes of each split."""
_MINI = MINI_IMAGES_PER_CLASS
NATURAL_MIN_IMAGES = {
    **{("cub", s): CUB_MIN_IMAGES for s in SPLITS},
    **{("mini_imagenet", s): _MINI for s in SPLITS},
    ("mini_to_cub", "train"): _MINI, ("mini_to_cub", "val"): CUB_MIN_IMAGES,
    ("mini_to_cub", "test"): CUB_MIN_IMAGES,
    **{(name, s): _MINI for name in ("fc100", "cifar_fs", "fc100_to_mini") for s in SPLITS},
}  # fmt: skip
"""Images of the smallest class of each split of the official data (CUB: 41 to 60 per class)."""
S84 = CacheSettings(84)
"""84x84 RGB, the evaluation geometry of the benchmarks (``images.Geometry``)."""


@dataclass(frozen=True)
class LoadOptions:
    """How a natural-image split is read.

    ``source``: where the images are, for ``cub`` (the ``CUB_200_2011`` folder, its ``images``
    folder or the .tgz) and ``mini_imagenet`` (the packed images folder or an ILSVRC-2012
    training tree); None: the standard places under the data directory. ``folder``: the spec
    of the ``folder`` dataset. ``skip_bad_images``: leave out unreadable images with a warning
    instead of refusing them. ``progress``: the decoding progress bar (None: on a terminal).
    """

    source: str | Path | None = None
    folder: FolderSpec | None = None
    skip_bad_images: bool = False
    progress: bool | None = None


@dataclass(frozen=True)
class CachedPart:
    """One decoded-image cache a dataset reads: ``split_source`` decoded at ``settings``."""

    label: str
    split_source: SplitSource
    settings: CacheSettings


def _sources_option(name: str, options: LoadOptions) -> str | Path | None:
    if options.source is not None and name not in ("cub", "mini_imagenet"):
        raise DataError(
            f"an image source can be given for cub and mini_imagenet only, not {name}; put "
            f"the images in their standard places under the data folder (see docs/data.md)"
        )
    return options.source


def _folder_spec(options: LoadOptions) -> FolderSpec:
    if options.folder is None:
        raise DataError("the folder dataset needs a folder spec (data.folder.root in a config)")
    return options.folder


def cached_parts(name: str, root: Path, options: LoadOptions) -> list[CachedPart]:
    """The decoded-image caches behind dataset ``name`` (none for the CIFAR sets, read from
    their archive each time)."""
    source = _sources_option(name, options)
    if name == "cub":
        return [CachedPart("cub", cub_source(root, source), S84)]
    if name == "mini_imagenet":
        return [CachedPart("mini_imagenet", mini_imagenet_source(root, source), S84)]
    if name == "mini_to_cub":
        return [
            CachedPart("mini_imagenet", mini_imagenet_source(root), S84),
            CachedPart("cub", cub_source(root), S84),
        ]
    if name == "fc100_to_mini":
        return [CachedPart("mini_imagenet at 32", mini_imagenet_source(root), CacheSettings(32))]
    if name == "folder":
        spec = _folder_spec(options)
        return [CachedPart("folder", folder_source(spec, root), spec.settings())]
    return []


def split_part(
    name: str, split: str, root: Path, options: LoadOptions
) -> tuple[CachedPart, list[str]] | None:
    """The cache that ``split`` of ``name`` reads and the splits of its source it takes (all
    three for mini_to_cub's train); None for a split read from the CIFAR archive."""
    _sources_option(name, options)
    if name in ("fc100", "cifar_fs") or (name == "fc100_to_mini" and split == "train"):
        return None
    if name == "mini_to_cub" and split == "train":
        return CachedPart("mini_imagenet", mini_imagenet_source(root), S84), list(SPLITS)
    if name == "mini_to_cub":
        return CachedPart("cub", cub_source(root), S84), [split]
    (part,) = cached_parts(name, root, options)
    return part, [split]


def natural_split(name: str, split: str, root: Path, options: LoadOptions) -> ClassImages:
    """``split`` of natural-image dataset ``name`` (see the table above)."""
    planned = split_part(name, split, root, options)
    if planned is None:
        data = cifar_fewshot_split(root, "fc100" if name == "fc100_to_mini" else name, split)
        return ClassImages(name, split, data.images, data.class_names, data.offsets,
                           data.normalisation)  # fmt: skip
    part, splits = planned
    folder_skip = options.folder is not None and options.folder.skip_bad_images
    skip = options.skip_bad_images or folder_skip
    return load_classes(
        part.split_source,
        splits,
        part.settings,
        name=name,
        split=split,
        skip_bad_images=skip,
        progress=options.progress,
    )


def natural_image_shape(name: str, root: Path, options: LoadOptions) -> tuple[int, int, int]:
    """(C, H, W) of ``name``'s images (for ``folder``, from its spec and, with channels
    "auto", the headers of its images)."""
    if name == "folder":
        spec = _folder_spec(options)
        return (folder_channels(spec, root), spec.size, spec.size)
    return NATURAL_IMAGE_SHAPES[name]
