"""Stroke-width augmentation for images of handwriting (dark ink on a light page).

Omniglot characters resized to 28x28 are drawn with strokes about 1-2 pixels wide; EMNIST
characters, the test domain of Omniglot->EMNIST, with strokes about twice as wide (at 28x28 ink
covers 8% of an Omniglot image and 18% of an EMNIST one). Thickening the training strokes by a
random amount per image lets a model meta-trained on Omniglot see the stroke widths it meets in
EMNIST. It changes nothing but the training images: validation and test images are untouched.

Thickening by ``t`` pixels (real, >= 0) grows the ink by ``floor(t)`` grey-level dilations by
the 3x3 cross (a minimum filter on the light page) and blends in the next one with weight
``t - floor(t)``, so the width changes continuously with ``t``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def dilate_ink(images: torch.Tensor) -> torch.Tensor:
    """One grey-level dilation of dark ink by the 3x3 cross: the minimum of each pixel and its
    four neighbours (the cross grows strokes evenly in every direction, where a 3x3 square would
    make them blocky).

    images: float [n, C, H, W], page light (1) and ink dark (0) -> float [n, C, H, W].
    Pixels outside the image count as page.
    """
    page = F.pad(images, (1, 1, 1, 1), value=1.0)
    h, w = images.shape[-2:]
    neighbours = (
        page[..., 0:h, 1 : w + 1],
        page[..., 2 : h + 2, 1 : w + 1],
        page[..., 1 : h + 1, 0:w],
        page[..., 1 : h + 1, 2 : w + 2],
    )
    out = images
    for shifted in neighbours:
        out = torch.minimum(out, shifted)
    return out


def thicken_strokes(images: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """Thicken the strokes of each image by its own ``amount`` of pixels.

    images: float [n, C, H, W] in [0, 1], light page; amount: float [n], >= 0 -> [n, C, H, W].
    An amount of 0 returns the image unchanged; an integer amount k applies k dilations.
    """
    if amount.shape != images.shape[:1]:
        raise ValueError(f"amount must have shape [{images.shape[0]}], got {list(amount.shape)}")
    if (amount < 0).any():
        raise ValueError("stroke amounts must be >= 0")
    amount = amount.to(images.dtype)
    steps = math.ceil(float(amount.max())) if amount.numel() else 0
    whole = amount.floor()
    frac = (amount - whole).view(-1, 1, 1, 1)
    whole = whole.long()
    out = images.clone()
    current = images
    for k in range(steps):
        grown = dilate_ink(current)
        # images with k whole dilations blend in the (k+1)-th by their fractional part; images
        # with more than k whole dilations take the (k+1)-th entirely
        at_k = (whole == k).view(-1, 1, 1, 1)
        beyond = (whole > k).view(-1, 1, 1, 1)
        out = torch.where(at_k, (1 - frac) * current + frac * grown, out)
        out = torch.where(beyond, grown, out)
        current = grown
    return out


class StrokeAugment:
    """Thicken every image's strokes by an amount drawn uniformly from [0, ``max_pixels``].

    Called on a float batch [..., C, H, W] with the sampler's generator; returns the same shape.
    """

    def __init__(self, max_pixels: float) -> None:
        if max_pixels < 0:
            raise ValueError(f"the stroke augmentation's width must be >= 0, got {max_pixels}")
        self.max_pixels = max_pixels

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flat = images.reshape(-1, *images.shape[-3:])
        amount = torch.rand(flat.shape[0], generator=generator) * self.max_pixels
        return thicken_strokes(flat, amount.to(flat.device)).reshape(images.shape)

    def __repr__(self) -> str:
        return f"StrokeAugment(max_pixels={self.max_pixels})"
