"""A split of a folder-of-images dataset: its classes, as a view into the decoded-image cache.

A source lists the classes of every split one split after another (train, val, test), so each
split is a contiguous range of classes and therefore of rows of the cache: the ``ClassImages``
of a split is a view of the memory-mapped data, never a copy.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError
from .class_images import IMAGENET_NORMALISATION, ClassImages
from .image_cache import (
    CachedImages,
    CacheSettings,
    ImageFolderSource,
    SkippedImagesWarning,
    load_or_build,
)
from .image_tree import shown


@dataclass(frozen=True)
class SplitSource:
    """A source whose classes are ordered by split: ``ranges[split]`` = (first, stop) class
    indices of ``source.classes``."""

    source: ImageFolderSource
    ranges: dict[str, tuple[int, int]]

    @classmethod
    def ordered(
        cls,
        kind: str,
        root: Path,
        split_classes: dict[str, Sequence[str]],
        files: dict[str, Sequence[str]],
        describe: str,
    ) -> SplitSource:
        """The source of ``split_classes`` (split -> class names, in order) whose class ``c``
        has the relative paths ``files[c]``."""
        classes, ranges = [], {}
        for split, names in split_classes.items():
            ranges[split] = (len(classes), len(classes) + len(names))
            classes.extend(names)
        source = ImageFolderSource(
            kind, root, tuple(classes), tuple(tuple(files[c]) for c in classes), describe
        )
        return cls(source, ranges)

    def class_range(self, splits: Sequence[str]) -> tuple[int, int]:
        """The classes of the consecutive ``splits`` (e.g. all three, for mini_to_cub)."""
        first, stop = self.ranges[splits[0]][0], self.ranges[splits[-1]][1]
        if sum(self.ranges[s][1] - self.ranges[s][0] for s in splits) != stop - first:
            raise ValueError(f"splits {list(splits)} are not consecutive in the source")
        return first, stop


def load_classes(
    split_source: SplitSource,
    splits: Sequence[str],
    settings: CacheSettings,
    *,
    name: str,
    split: str,
    skip_bad_images: bool = False,
    progress: bool | None = None,
) -> ClassImages:
    """The ``ClassImages`` named ``name``/``split`` holding the classes of ``splits`` of the
    source, decoded through the cache. RGB images get the ImageNet normalisation, grey ones
    none.

    A class left without images (its files all unreadable) is a DataError naming it, or with
    ``skip_bad_images`` is dropped with a warning.
    """
    cached = load_or_build(
        split_source.source, settings, skip_bad_images=skip_bad_images, progress=progress
    )
    first, stop = split_source.class_range(splits)
    return classes_of(cached, split_source.source, first, stop, name, split, skip_bad_images)


def classes_of(
    cached: CachedImages,
    source: ImageFolderSource,
    first: int,
    stop: int,
    name: str,
    split: str,
    skip_bad_images: bool,
) -> ClassImages:
    """Classes ``first..stop-1`` of ``cached`` as a ``ClassImages`` (a view of the cache)."""
    begin = sum(cached.counts[:first])
    counts = cached.counts[first:stop]
    images = cached.images[begin : begin + sum(counts)]
    names = list(source.classes[first:stop])
    empty = [n for n, c in zip(names, counts) if c == 0]
    if empty:
        message = (
            f"{len(empty)} class(es) of {name}/{split} hold no readable image: {shown(empty)} "
            f"(in {source.describe})"
        )
        if not skip_bad_images:
            raise DataError(f"{message}; add images to them, or set skip_bad_images to drop them")
        warnings.warn(f"{message}; dropped (skip_bad_images)", SkippedImagesWarning, stacklevel=3)
        names = [n for n, c in zip(names, counts) if c]
        counts = [c for c in counts if c]
    normalisation = IMAGENET_NORMALISATION if images.shape[1] == 3 else None
    return ClassImages.from_counts(name, split, images, counts, names, normalisation)
