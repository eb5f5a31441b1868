"""How a person's image becomes what a model was trained on.

A checkpoint records its ``Preprocess`` when it is written (``checkpoint.json``, key
``preprocess``); checkpoints written before that derive it from their dataset, which fixes it.

- **Characters** (``omniglot``, ``cross_char``; one channel): dark ink on a light background,
  the whole character kept. An image is made grey; if its border is darker than mid-grey (light
  ink on a dark background, as EMNIST stores its letters or a blackboard photo) it is inverted;
  it is padded to a square with its background and resized to 28x28, bilinear with
  antialiasing (the rule the Omniglot images were made with).
- **Photos** (every other dataset): RGB (or grey for a grey folder dataset), the shorter side
  resized to ``round(size * resize_ratio)`` and the centre ``size`` x ``size`` cut out (the
  benchmarks' evaluation transform, ``data/images.py``), then normalised with the dataset's mean
  and standard deviation.

Pixels end as the episode sampler gives them: float in [0, 1], then normalised if the data were.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .class_images import IMAGENET_NORMALISATION
from .images import DECODE_ERRORS, IMAGE_SUFFIXES, Geometry, resize_and_crop, to_mode

CHARACTER_DATASETS = frozenset({"omniglot", "cross_char"})
ImageLike = str | Path | np.ndarray | torch.Tensor | Any
"""A file path, a Pillow image, an array (H x W, or H x W x C) or a tensor (H x W, or C x H x W);
arrays and tensors of uint8 hold 0..255, floating ones 0..1."""


@dataclass(frozen=True)
class Preprocess:
    """The input transform of one model (module doc).

    ``channels``: 1 or 3. ``size``: images are ``size`` x ``size``. ``ink``: "dark" for character
    models (light-ink images are inverted), None otherwise. ``resize``: "pad" (the whole image,
    padded square) or "crop" (shorter side to ``round(size * resize_ratio)``, centre crop).
    ``normalisation``: (mean, std) per channel, or None.
    """

    channels: int
    size: int
    ink: Literal["dark"] | None = None
    resize: Literal["pad", "crop"] = "crop"
    resize_ratio: float = 8 / 7
    normalisation: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @classmethod
    def for_dataset(
        cls, dataset: str, image_shape: Sequence[int], resize_ratio: float = 8 / 7
    ) -> Preprocess:
        """The transform of a model trained on ``dataset`` at ``image_shape`` (C, H, W);
        ``resize_ratio`` of a ``folder`` dataset (the others use the benchmarks' 8/7)."""
        channels, size = int(image_shape[0]), int(image_shape[1])
        if dataset in CHARACTER_DATASETS:
            return cls(channels, size, ink="dark", resize="pad", resize_ratio=1.0)
        norm = IMAGENET_NORMALISATION if channels == 3 else None
        return cls(channels, size, None, "crop", resize_ratio, norm)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Preprocess:
        norm = raw.get("normalisation")
        norm = None if norm is None else (tuple(norm[0]), tuple(norm[1]))
        return cls(**{**raw, "normalisation": norm})

    def describe(self) -> str:
        mode = "grey" if self.channels == 1 else "RGB"
        how = ("whole image padded square" if self.resize == "pad"
               else f"shorter side {self.geometry.shorter_side}, centre crop")  # fmt: skip
        ink = ", dark ink on light (light-ink images inverted)" if self.ink == "dark" else ""
        norm = ", normalised" if self.normalisation else ""
        return f"{self.size}x{self.size} {mode} ({how}){ink}{norm}"

    @property
    def geometry(self) -> Geometry:
        return Geometry(self.size, self.channels, max(1.0, self.resize_ratio))

    def pixels(self, image: ImageLike, name: str = "image") -> np.ndarray:
        """uint8 [C, size, size] of one image, before scaling and normalisation."""
        img = to_mode(_pil(image, name), self.geometry.mode)
        if self.resize == "crop":
            out = np.asarray(resize_and_crop(img, self.geometry), dtype=np.uint8)
            return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
        grey = np.asarray(img, dtype=np.uint8)
        if self.ink == "dark" and np.median(_border(grey)) < 128:
            grey = 255 - grey
        return _pad_and_resize(grey, self.size)[None]

    def __call__(self, images: Iterable[ImageLike] | torch.Tensor) -> torch.Tensor:
        """Float [M, C, size, size] of ``images`` (a sequence of ``ImageLike``, a folder of
        image files, or a batch: a tensor [M, C, H, W] or an array [M, H, W, C])."""
        items = expand(images)
        if not items:
            raise DataError("no images given: pass at least one image (a file, array or tensor)")
        x = torch.from_numpy(np.stack([self.pixels(im, _name(im, i)) for i, im in
                                       enumerate(items)])).float().div_(255.0)  # fmt: skip
        if self.normalisation is not None:
            mean, std = (torch.tensor(v, dtype=torch.float32)[:, None, None]
                         for v in self.normalisation)  # fmt: skip
            x = x.sub_(mean).div_(std)
        return x


def expand(images: Iterable[ImageLike] | torch.Tensor | str | Path) -> list[ImageLike]:
    """The single images of ``images``: a folder becomes its image files (sorted by name), a
    batch tensor [M, C, H, W] or array [M, H, W, C] its M images, a path or a Pillow image
    itself."""
    if isinstance(images, (str, Path)):
        path = Path(images)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip
            if not files:
                raise DataError(
                    f"{path} holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
                )
            return list(files)
        return [path]
    if isinstance(images, torch.Tensor):
        if images.ndim != 4:
            raise DataError(f"a tensor of images must be [M, C, H, W], got {list(images.shape)}")
        return list(images)
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise DataError(f"an array of images must be [M, H, W, C], got {list(images.shape)}")
        return list(images)
    if hasattr(images, "mode") and hasattr(images, "size"):  # one Pillow image
        return [images]
    out: list[ImageLike] = []
    for item in images:
        is_folder = isinstance(item, (str, Path)) and Path(item).is_dir()
        out += expand(item) if is_folder else [item]
    return out


def _name(image: ImageLike, index: int) -> str:
    return str(image) if isinstance(image, (str, Path)) else f"image {index}"


def _pil(image: ImageLike, name: str):
    """``image`` as a loaded Pillow image; a file that cannot be read is a DataError naming it."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise DataError(f"{path}: no such image file")
        try:
            with Image.open(path) as img:
                img.load()
                return img.copy()
        except DECODE_ERRORS as exc:
            raise DataError(
                f"{path} is not a readable image ({type(exc).__name__}: {exc})"
            ) from exc
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 3:
            t = t.permute(1, 2, 0)  # C x H x W -> H x W x C
        image = t.numpy()
    if isinstance(image, np.ndarray):
        return Image.fromarray(_uint8(image, name))
    if hasattr(image, "mode") and hasattr(image, "size"):
        return image
    raise DataError(f"{name}: a {type(image).__name__} is not an image; pass a file path, a "
                    f"Pillow image, an array or a tensor")  # fmt: skip


def _uint8(array: np.ndarray, name: str) -> np.ndarray:
    """H x W or H x W x C (C of 1, 3, 4) uint8 pixels of ``array`` (floats are 0..1)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise DataError(f"{name}: an image array must be H x W or H x W x C with C of 1, 3 or "
                        f"4 (a tensor: C x H x W), got shape {list(array.shape)}")  # fmt: skip
    if min(array.shape[:2]) < 1:
        raise DataError(f"{name}: the image is empty (shape {list(array.shape)})")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating) or array.dtype == np.bool_:
        values = array.astype(np.float32)
        if not np.isfinite(values).all():
            raise DataError(f"{name}: the image holds NaN or infinite values")
        return (values.clip(0, 1) * 255).round().astype(np.uint8)
    raise DataError(f"{name}: pixels of type {array.dtype} are not understood; give uint8 "
                    f"(0..255) or floats (0..1)")  # fmt: skip


def _border(grey: np.ndarray) -> np.ndarray:
    """The outermost pixels of an H x W image."""
    return np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])


def _pad_and_resize(grey: np.ndarray, size: int) -> np.ndarray:
    """H x W uint8 padded to a square with its border's median value, then ``size`` x ``size``
    (bilinear with antialiasing, as ``data/omniglot.py`` made the training images)."""
    h, w = grey.shape
    if (h, w) == (size, size):
        return grey
    side = max(h, w)
    square = np.full((side, side), np.median(_border(grey)), dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = grey
    x = torch.from_numpy(square).float().div_(255.0)[None, None]
    small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return (small[0, 0] * 255).round().clamp(0, 255).to(torch.uint8).numpy()
