"""The images of one split, grouped by class: a flat uint8 tensor and the offset of each class.

Classes may hold different numbers of images (CUB: 41 to 60). ``images`` is uint8
[N, C, H, W] (a plain tensor, or one backed by a memory-mapped cache file through
``torch.from_numpy``; never a float copy) and class ``c`` is ``images[offsets[c]:offsets[c + 1]]``.
A dense set (every class the same size, as Omniglot) is built with ``ClassImages.dense`` from
[n_classes, n_per_class, C, H, W], which reshapes without copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

Normalisation = tuple[tuple[float, ...], tuple[float, ...]]
"""Per-channel (mean, std) of images scaled to [0, 1]."""

IMAGENET_NORMALISATION: Normalisation = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""The ImageNet mean and std, used for every RGB natural-image dataset."""


@dataclass(eq=False)
class ClassImages:
    """The images of one split.

    ``images``: uint8 [N, C, H, W], the classes one after another; ``offsets``: int64
    [n_classes + 1], class ``c`` is ``images[offsets[c]:offsets[c + 1]]``; ``class_names[c]``
    names class ``c``. ``normalisation``: per-channel (mean, std) of [0, 1] images that the
    episode sampler applies after augmentation, or None (images stay in [0, 1]).

    For compatibility, a dense uint8 [n_classes, n_per_class, C, H, W] tensor given without
    ``offsets`` is flattened as by ``ClassImages.dense``.
    """

    name: str
    split: str
    images: torch.Tensor
    class_names: list[str]
    offsets: torch.Tensor | None = None
    normalisation: Normalisation | None = None
    _counts: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        images = self.images
        if images.dim() == 5 and self.offsets is None:
            n_classes, n_per_class = images.shape[:2]
            self.images = images.reshape(n_classes * n_per_class, *images.shape[2:])
            self.offsets = torch.arange(n_classes + 1, dtype=torch.int64) * n_per_class
        if self.images.dim() != 4:  # (the dtype is not checked: uint8 is what loaders give)
            raise ValueError(
                f"images must be [N, C, H, W] (or [n_classes, n_per_class, C, H, W] without "
                f"offsets), got {tuple(self.images.shape)}"
            )
        if self.offsets is None:
            raise ValueError("flat images [N, C, H, W] need offsets [n_classes + 1]")
        offsets = torch.as_tensor(self.offsets, dtype=torch.int64)
        counts = offsets.diff()
        if (
            offsets.dim() != 1
            or offsets.numel() != len(self.class_names) + 1
            or int(offsets[0]) != 0
            or int(offsets[-1]) != self.images.shape[0]
            or bool((counts < 0).any())
        ):
            raise ValueError(
                f"offsets must rise from 0 to {self.images.shape[0]} in "
                f"{len(self.class_names) + 1} steps (one per class and the end), got "
                f"{offsets.tolist()[:8]}..."
            )
        self.offsets = offsets
        self._counts = tuple(counts.tolist())
        if self.normalisation is not None:
            mean, std = self.normalisation
            channels = self.images.shape[1]
            if len(mean) != channels or len(std) != channels or min(std) <= 0:
                raise ValueError(
                    f"normalisation must give {channels} means and {channels} positive stds, "
                    f"got {self.normalisation}"
                )
            self.normalisation = (tuple(map(float, mean)), tuple(map(float, std)))

    @classmethod
    def dense(
        cls,
        name: str,
        split: str,
        images: torch.Tensor,
        class_names: list[str],
        normalisation: Normalisation | None = None,
    ) -> ClassImages:
        """Classes of equal size: ``images`` uint8 [n_classes, n_per_class, C, H, W] (reshaped
        to [N, C, H, W] without a copy when contiguous)."""
        if images.dim() != 5:
            raise ValueError(
                f"dense images must be [n_classes, n_per_class, C, H, W], got {tuple(images.shape)}"
            )
        return cls(name, split, images, class_names, None, normalisation)

    @classmethod
    def from_counts(
        cls,
        name: str,
        split: str,
        images: torch.Tensor,
        counts: Sequence[int],
        class_names: list[str],
        normalisation: Normalisation | None = None,
    ) -> ClassImages:
        """Flat ``images`` uint8 [N, C, H, W] whose first ``counts[0]`` images are class 0,
        the next ``counts[1]`` class 1, and so on."""
        offsets = torch.zeros(len(counts) + 1, dtype=torch.int64)
        offsets[1:] = torch.as_tensor(list(counts), dtype=torch.int64).cumsum(0)
        return cls(name, split, images, class_names, offsets, normalisation)

    @property
    def n_classes(self) -> int:
        return len(self._counts)

    @property
    def counts(self) -> tuple[int, ...]:
        """Images of each class."""
        return self._counts

    @property
    def n_per_class(self) -> int:
        """Images of the smallest class (every class's size in a dense set)."""
        return min(self._counts, default=0)

    @property
    def n_images(self) -> int:
        return self.images.shape[0]

    @property
    def is_dense(self) -> bool:
        """Whether every class holds the same number of images."""
        return len(set(self._counts)) <= 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def class_images(self, c: int) -> torch.Tensor:
        """The images of class ``c``: uint8 [counts[c], C, H, W] (a view)."""
        assert self.offsets is not None
        return self.images[int(self.offsets[c]) : int(self.offsets[c + 1])]

    def dense_images(self) -> torch.Tensor:
        """uint8 [n_classes, n_per_class, C, H, W], a view; ValueError when classes differ in
        size."""
        if not self.is_dense:
            raise ValueError(
                f"{self.name}/{self.split} has classes of {min(self._counts)} to "
                f"{max(self._counts)} images: it has no dense view"
            )
        return self.images.reshape(self.n_classes, self.n_per_class, *self.image_shape)
