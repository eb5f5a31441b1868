"""Training augmentation for natural images (CUB, mini-ImageNet, image folders): random resized
crop, colour jitter and horizontal flip, the augmentation of CloserLook and of the HyperMAML
code, on a whole batch at once.

The three steps follow torchvision's ``RandomResizedCrop``, ``ColorJitter`` and
``RandomHorizontalFlip``:

- crop: a box of a random area (a fraction drawn from ``scale`` of the image's area) and aspect
  ratio (log-uniform in ``ratio``) at a random place, found by up to 10 attempts per image (the
  whole image, or its largest central box of an allowed ratio, when none fits), resized to
  ``size`` x ``size`` by bilinear interpolation;
- colour jitter: brightness, contrast and saturation factors drawn uniformly from
  [max(0, 1 - jitter), 1 + jitter], applied in a random order per image (saturation is skipped
  for grey images); no hue;
- horizontal flip with probability 0.5.

The crop and flip are one affine resampling per image (``kornia.geometry.transform
.crop_by_transform_mat``); the jitter uses ``kornia.enhance``'s torchvision-compatible
adjustments with a factor per image. Every random number is drawn from the generator passed
in (never from the global torch generator), so the tasks of a sampler depend only on its seed.

Differences from torchvision: a crop larger than ``size`` is resized without antialiasing (a
crop of an 84x84 image to 84 is only ever enlarged), the samples near a crop's border
interpolate with the image pixels just outside it rather than repeating its border, and the
grey level is kornia's (0.299, 0.587, 0.114) rather than (0.2989, 0.587, 0.114).
"""

from __future__ import annotations

import itertools
import math

import torch
from kornia.enhance import (
    adjust_brightness_accumulative,
    adjust_contrast_with_mean_subtraction,
    adjust_saturation_with_gray_subtraction,
)
from kornia.geometry.transform import crop_by_transform_mat

ATTEMPTS = 10
"""Boxes tried per image before the random resized crop falls back to a central box."""

DRAWS = 2 * ATTEMPTS + 2 + 1 + 3 + 3
"""Uniform numbers drawn per image: (area, log-ratio) per attempt, the box's place (row,
column), the flip, the three jitter factors and three keys for the jitter order."""

ORDERS = tuple(itertools.permutations(range(3)))
"""The six orders of (brightness, contrast, saturation)."""


def random_resized_boxes(
    draws: torch.Tensor,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The boxes of torchvision's ``RandomResizedCrop``, one per image, from uniform draws.

    draws: float [n, 2 * ATTEMPTS + 2] in [0, 1): (area, log-ratio) per attempt, then the
    box's place (row, column). -> (top, left, box_height, box_width), float64 [n] each, whole
    pixels: the box covers rows top .. top + box_height - 1 and columns left .. left +
    box_width - 1. An image gets the first attempt that fits in it; when none fits, the whole
    image, narrowed to the nearest ratio in ``ratio`` when its own is outside.
    """
    draws = draws.double()
    attempts = draws[:, : 2 * ATTEMPTS].view(-1, ATTEMPTS, 2)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * attempts[..., 0])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * attempts[..., 1])
    box_w = torch.round(torch.sqrt(area * aspect))
    box_h = torch.round(torch.sqrt(area / aspect))
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)  # [n, ATTEMPTS]
    first = fits.int().argmax(1, keepdim=True)  # the first attempt that fits (0 when none)
    found = fits.any(1)
    box_w = box_w.gather(1, first).squeeze(1)
    box_h = box_h.gather(1, first).squeeze(1)

    # fallback: the whole image, or its largest central box of an allowed aspect ratio
    own = width / height
    if own < ratio[0]:
        fall_w, fall_h = width, round(width / ratio[0])
    elif own > ratio[1]:
        fall_w, fall_h = round(height * ratio[1]), height
    else:
        fall_w, fall_h = width, height
    box_w = torch.where(found, box_w, float(fall_w))
    box_h = torch.where(found, box_h, float(fall_h))

    place = draws[:, 2 * ATTEMPTS : 2 * ATTEMPTS + 2]
    top = torch.minimum(torch.floor(place[:, 0] * (height - box_h + 1)), height - box_h)
    left = torch.minimum(torch.floor(place[:, 1] * (width - box_w + 1)), width - box_w)
    top = torch.where(found, top, torch.floor((height - box_h) / 2))
    left = torch.where(found, left, torch.floor((width - box_w) / 2))
    return top, left, box_h, box_w


def crop_matrices(
    top: torch.Tensor,
    left: torch.Tensor,
    box_height: torch.Tensor,
    box_width: torch.Tensor,
    size: int,
    flip: torch.Tensor,
) -> torch.Tensor:
    """The source-to-output pixel maps that resize each box to ``size`` x ``size``, mirrored
    left-right where ``flip`` holds.

    top, left, box_height, box_width: float [n] (pixels); flip: bool [n] -> float64 [n, 2, 3].
    Coordinates are pixel indices (pixel i at i). Output pixel j shows the box at
    ``(j + 0.5) * box / size - 0.5``, the sampling of a bilinear resize with
    ``align_corners=False``; a whole-image box at the image's own size maps every pixel onto
    itself.
    """
    n = top.shape[0]
    sy = size / box_height.double()
    sx = size / box_width.double()
    matrices = torch.zeros(n, 2, 3, dtype=torch.float64, device=top.device)
    # output row = (row - top + 0.5) * sy - 0.5, and the same for columns
    matrices[:, 1, 1] = sy
    matrices[:, 1, 2] = (0.5 - top.double()) * sy - 0.5
    matrices[:, 0, 0] = sx
    matrices[:, 0, 2] = (0.5 - left.double()) * sx - 0.5
    # a flip maps output column x to size - 1 - x
    mirrored = torch.stack(
        [-matrices[:, 0, 0], matrices.new_zeros(n), size - 1 - matrices[:, 0, 2]], 1
    )
    matrices[:, 0] = torch.where(flip.view(-1, 1), mirrored, matrices[:, 0])
    return matrices


def jitter_colours(
    images: torch.Tensor, factors: torch.Tensor, orders: torch.Tensor
) -> torch.Tensor:
    """Adjust brightness, contrast and saturation of each image by its own factors, in its own
    order.

    images: float [n, C, H, W] in [0, 1], C = 1 or 3; factors: float [n, 3] (brightness,
    contrast, saturation; 1 leaves an image unchanged); orders: long [n], an index into
    ``ORDERS`` -> float [n, C, H, W] in [0, 1]. Brightness multiplies the image, contrast blends
    it with its mean grey level, saturation with its grey image (skipped when C = 1). The images
    are processed in at most six groups, one per order.
    """
    factors = factors.to(images.device, images.dtype)
    orders = orders.to(images.device)
    steps = (
        adjust_brightness_accumulative,
        adjust_contrast_with_mean_subtraction,
        adjust_saturation_with_gray_subtraction,
    )
    out = torch.empty_like(images)
    for k, order in enumerate(ORDERS):
        index = (orders == k).nonzero().squeeze(1)
        if index.numel() == 0:
            continue
        group, group_factors = images[index], factors[index]
        for step in order:
            group = steps[step](group, group_factors[:, step])
        out[index] = group
    return out


class PhotoAugment:
    """Random resized crop to ``size`` x ``size`` (area fraction in ``scale``, aspect ratio in
    ``ratio``), colour jitter of strength ``jitter`` (brightness, contrast, saturation; 0 for
    none) and, when ``flip``, a horizontal flip with probability 0.5.

    Called on float images [..., C, H, W] in [0, 1] (C = 1 or 3; the sampler passes
    [B, N, K+Q, C, H, W]) with the sampler's generator; returns float [..., C, size, size] in
    [0, 1], the same shape when H = W = ``size``. Each image gets its own box, factors and flip,
    all drawn from ``generator``: ``DRAWS`` uniform numbers per image, whatever the options.
    """

    def __init__(
        self,
        size: int = 84,
        jitter: float = 0.4,
        flip: bool = True,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"the photo augmentation's size must be an integer >= 1, got {size}")
        if not jitter >= 0:
            raise ValueError(f"the photo augmentation's jitter must be >= 0, got {jitter}")
        if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
            raise ValueError(
                f"the crop's scale must be (low, high) with 0 < low <= high, got {scale}"
            )
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(
                f"the crop's ratio must be (low, high) with 0 < low <= high, got {ratio}"
            )
        self.size = size
        self.jitter = float(jitter)
        self.flip = bool(flip)
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if images.dim() < 4 or not images.is_floating_point():
            raise ValueError(
                f"the photo augmentation needs float images [..., C, H, W], got {images.dtype} "
                f"{list(images.shape)}"
            )
        c, h, w = images.shape[-3:]
        if c not in (1, 3):
            raise ValueError(f"the photo augmentation needs 1 or 3 channels, got {c}")
        flat = images.reshape(-1, c, h, w)
        n = flat.shape[0]
        draws = torch.rand(n, DRAWS, generator=generator, dtype=torch.float64)
        at = 2 * ATTEMPTS + 2
        top, left, box_h, box_w = random_resized_boxes(draws[:, :at], h, w, self.scale, self.ratio)
        flips = (draws[:, at] < 0.5) & self.flip
        matrices = crop_matrices(top, left, box_h, box_w, self.size, flips)
        out = crop_by_transform_mat(
            flat,
            matrices.to(flat.device, flat.dtype),
            (self.size, self.size),
            mode="bilinear",
            padding_mode="border",
            align_corners=True,
        )
        if self.jitter > 0:
            low, high = max(0.0, 1.0 - self.jitter), 1.0 + self.jitter
            factors = low + (high - low) * draws[:, at + 1 : at + 4]
            orders = _order_index(draws[:, at + 4 : at + 7])
            out = jitter_colours(out, factors, orders)
        out = out.clamp_(0.0, 1.0)
        return out.reshape(*images.shape[:-2], self.size, self.size)

    def __repr__(self) -> str:
        return (
            f"PhotoAugment(size={self.size}, jitter={self.jitter}, flip={self.flip}, "
            f"scale={self.scale}, ratio={self.ratio})"
        )


def _order_index(keys: torch.Tensor) -> torch.Tensor:
    """The index into ``ORDERS`` of the order that sorts each row of ``keys`` [n, 3] -> long [n]
    (a uniformly random order for uniform keys)."""
    order = keys.argsort(1)  # [n, 3]
    table = torch.tensor(ORDERS, device=keys.device)  # [6, 3]
    return (order[:, None, :] == table[None]).all(2).int().argmax(1)
