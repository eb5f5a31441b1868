"""Decoding image files to uint8 pixels: any common format and mode, one evaluation geometry.

Formats: whatever Pillow reads (JPEG, PNG, BMP, GIF, WebP, TIFF, ...); an animated file gives
its first frame. Modes are converted to RGB, or to L for a grey dataset:

- RGBA, LA, P (with or without transparency): the alpha channel is dropped (as torchvision's
  ``default_loader`` does), the colours under it are kept;
- CMYK and YCbCr: Pillow's conversion;
- 16-bit grey (I;16 and its variants, and I, read as 16-bit values): the top 8 bits;
- F (float): clipped to 0..255.

EXIF orientation is not applied (as in the reference pipelines). The geometry is the evaluation
transform of the natural-image benchmarks (CloserLook, FEAT): the shorter side is resized to
``round(size * resize_ratio)`` (96 for size 84 and the default ratio 8/7), bilinear with
antialiasing, the longer side in proportion (``int(shorter * long / short)``, as torchvision's
``Resize``), then the centre ``size`` x ``size`` is cut out (offsets rounded as torchvision's
``CenterCrop``). An image already of the target size is not resampled, so with
``resize_ratio=1`` an image of ``size`` x ``size`` pixels is read unchanged, pixel for pixel.
JPEGs are decoded at a reduced scale (``Image.draft``: 1/2, 1/4 or 1/8, the largest that keeps
the shorter side at least the resize target): 1.5 times faster for 500x375 photos at 84, more
for larger photos.

Many files are decoded on a pool of threads (``decode_into``): Pillow releases the GIL while it
decodes and resizes, so threads use every core without copying pixels between processes (500x375
JPEGs to 84x84: about 1,050 images/s on one core, 2,050 on two; a process pool is no faster).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DECODER_VERSION = 1
"""Version of the decoding below; bump it when decoded pixels would change (rebuilds caches)."""

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
"""Pillow modes of grey images (a palette image counts as colour)."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
"""File name endings (any case) taken for images when a folder is listed."""

DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # unreadable file; Pillow's UnidentifiedImageError and truncated images
    SyntaxError,  # Pillow: broken PNG chunks
    ValueError,  # Pillow: bad image parameters
    struct.error,  # Pillow: short chunk headers
    zlib.error,  # garbled PNG stream
    EOFError,  # cut short
    MemoryError,  # absurd dimensions in a garbled header
)
"""What opening and decoding a corrupt image file raises."""


@dataclass(frozen=True)
class Geometry:
    """How an image becomes a ``channels`` x ``size`` x ``size`` uint8 array.

    ``channels``: 3 (RGB) or 1 (L). ``resize_ratio``: the shorter side is first resized to
    ``round(size * resize_ratio)`` and the centre ``size`` x ``size`` cut out; 8/7 is the
    benchmarks' evaluation transform (96 -> 84), 1 keeps the whole shorter side.
    """

    size: int
    channels: int = 3
    resize_ratio: float = 8 / 7

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.size < 1 or self.resize_ratio < 1:
            raise ValueError(
                f"size must be >= 1 and resize_ratio >= 1, got {self.size}, {self.resize_ratio}"
            )

    @property
    def shorter_side(self) -> int:
        """The length the shorter side is resized to before the centre crop."""
        return max(self.size, round(self.size * self.resize_ratio))

    @property
    def mode(self) -> str:
        return "RGB" if self.channels == 3 else "L"

    def describe(self) -> str:
        return (
            f"{self.size}x{self.size} {self.mode} (shorter side {self.shorter_side}, "
            f"centre crop), decoder {DECODER_VERSION}"
        )


def to_mode(img, mode: str):
    """``img`` (any Pillow mode) as ``mode`` ("RGB" or "L"), per the rules in the module doc."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":
        grey = np.asarray(img, dtype=np.int64).clip(0, 65535) >> 8
        img = Image.fromarray(grey.astype(np.uint8), "L")
    elif img.mode == "F":
        img = Image.fromarray(np.asarray(img, dtype=np.float32).clip(0, 255).astype(np.uint8))
    elif img.mode in ("P", "PA"):
        img = img.convert("RGBA")  # (palette transparency is understood, without a warning)
    elif img.mode in ("LA", "La"):
        img = img.convert("L")
    if img.mode in ("RGBA", "RGBa"):
        img = img.convert("RGB")
    return img if img.mode == mode else img.convert(mode)


def resize_and_crop(img, geometry: Geometry):
    """The centre ``size`` x ``size`` of ``img`` with its shorter side resized (module doc)."""
    from PIL import Image

    width, height = img.size
    target = geometry.shorter_side
    if width <= height:
        new = (target, int(target * height / width))
    else:
        new = (int(target * width / height), target)
    if new != img.size:
        img = img.resize(new, Image.Resampling.BILINEAR)
    size = geometry.size
    left = int(round((new[0] - size) / 2.0))
    top = int(round((new[1] - size) / 2.0))
    if (left, top, size, size) != (0, 0, *new):
        img = img.crop((left, top, left + size, top + size))
    return img


def decode_image(path: Path, geometry: Geometry) -> np.ndarray:
    """uint8 [C, size, size] pixels of the image file at ``path``.

    Raises what Pillow raises on a corrupt file (one of ``DECODE_ERRORS``); never returns a
    partly decoded image (a truncated file is an error, not grey padding).
    """
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            target = geometry.shorter_side
            img.draft(None, (target, target))
        img.load()
        img = resize_and_crop(to_mode(img, geometry.mode), geometry)
        pixels = np.asarray(img, dtype=np.uint8)
    if pixels.ndim == 2:
        pixels = pixels[None]
    else:
        pixels = pixels.transpose(2, 0, 1)
    return pixels


def is_grey(path: Path) -> bool:
    """Whether the image at ``path`` is stored grey (read from its header only)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.mode in GREY_MODES


def decode_workers() -> int:
    """Threads for decoding: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def decode_into(
    out: np.ndarray,
    paths: Sequence[Path],
    geometry: Geometry,
    *,
    progress: bool | None = None,
    description: str = "decoding",
    workers: int | None = None,
) -> list[tuple[int, str]]:
    """Decode ``paths[i]`` into ``out[i]`` (uint8 [N, C, size, size], e.g. a memory map) on a
    pool of threads, with a tqdm progress bar (``progress``: True, False, or None = only on a
    terminal). Returns (index, reason) of every file that could not be decoded, in order; their
    rows of ``out`` are left as they were. Every file is tried: a bad one never stops the others.
    """
    from tqdm.auto import tqdm

    bad: list[tuple[int, str]] = []

    def one(i: int) -> tuple[int, str] | None:
        try:
            out[i] = decode_image(paths[i], geometry)
        except DECODE_ERRORS as exc:
            return i, f"{type(exc).__name__}: {exc}"
        return None

    n_workers = workers or decode_workers()
    bar = tqdm(total=len(paths), desc=description, unit="img", disable=_disabled(progress))
    with bar, ThreadPoolExecutor(max_workers=n_workers) as pool:
        for start in range(0, len(paths), 1024):  # bounded queue of futures
            for result in pool.map(one, range(start, min(start + 1024, len(paths)))):
                if result is not None:
                    bad.append(result)
                bar.update(1)
    return bad


def map_threads(fn: Callable[[Path], object], paths: Sequence[Path]) -> list[object]:
    """``[fn(p) for p in paths]`` on a pool of threads (for header reads)."""
    with ThreadPoolExecutor(max_workers=decode_workers()) as pool:
        return list(pool.map(fn, paths))


def _disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm decide (shown only on a terminal)."""
    return None if progress is None else not progress
