"""Framing augmentation for images of handwriting (dark ink on a light page): each character is
centred on its ink and enlarged by a random factor.

EMNIST's preparation centres every character in its frame and scales it to fill the frame (at
28x28 the ink's larger side spans 20-24 pixels, median 22, its centre 0.1 pixel from the
middle on average); Omniglot characters resized to 28x28 are smaller (larger side 12-22 pixels,
median 18) and less exactly placed (centre 1.1 pixels from the middle on average). Framing the
training characters the way EMNIST frames its own, at a random scale, lets a model meta-trained
on Omniglot see characters of the sizes and placement it meets in EMNIST. It changes nothing
but the training images.

The resampling is bilinear (``torch.nn.functional.grid_sample``); the page outside the image
counts as page.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

INK = 0.5
"""Pixels darker than this are ink."""


def ink_boxes(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The box around each image's ink.

    images: float [n, C, H, W] in [0, 1], light page -> (centre [n, 2] as (row, column) in
    pixels, extent [n]: the box's larger side in pixels, has_ink [n] bool). An image without ink
    gets the image's centre and extent 0.
    """
    ink = (images < INK).any(1)  # [n, H, W]
    n, h, w = ink.shape
    centre = torch.empty(n, 2, dtype=images.dtype, device=images.device)
    extent = torch.zeros(n, dtype=images.dtype, device=images.device)
    for axis, size in ((0, h), (1, w)):
        present = ink.any(2 - axis)  # [n, size]: rows (axis 0) or columns (axis 1) with ink
        index = torch.arange(size, device=images.device).expand(n, -1)
        first = torch.where(present, index, size).min(1).values
        last = torch.where(present, index, -1).max(1).values
        has_ink = last >= 0
        centre[:, axis] = torch.where(has_ink, (first + last) / 2, (size - 1) / 2)
        extent = torch.maximum(extent, torch.where(has_ink, last - first + 1, 0))
    return centre, extent, extent > 0


def reframe(images: torch.Tensor, centre: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """Move each image's ``centre`` to the middle of the frame and enlarge the image about it.

    images: float [n, C, H, W], light page; centre: [n, 2] (row, column) in pixels; zoom: [n],
    > 0 -> [n, C, H, W]. The output pixel at offset d from the middle shows the input at
    ``centre + d / zoom``; centre = middle and zoom = 1 return the image.
    """
    n, _, h, w = images.shape
    # grid coordinates run over [-1, 1] across the image (pixel centres at (2i + 1) / size - 1)
    cy = (2 * centre[:, 0] + 1) / h - 1
    cx = (2 * centre[:, 1] + 1) / w - 1
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = 1 / zoom
    theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 2] = cx
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # ink is resampled on a dark-is-zero page so that the outside reads as page
    ink = F.grid_sample(1 - images, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)  # fmt: skip
    return 1 - ink


class FrameAugment:
    """Centre every character on its ink and enlarge it by a factor drawn uniformly from
    [1, ``max_zoom``], limited so that the ink's larger side stays within ``fit`` pixels (a
    character already larger keeps its size).

    Called on a float batch [..., C, H, W] with the sampler's generator; returns the same shape.
    Images without ink are returned unchanged.
    """

    def __init__(self, max_zoom: float, fit: float = 26.0) -> None:
        if max_zoom < 1:
            raise ValueError(f"the framing augmentation's zoom must be >= 1, got {max_zoom}")
        if fit <= 0:
            raise ValueError(f"the framing augmentation's fit must be > 0 pixels, got {fit}")
        self.max_zoom = max_zoom
        self.fit = fit

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flat = images.reshape(-1, *images.shape[-3:])
        draw = torch.rand(flat.shape[0], generator=generator).to(flat.device, flat.dtype)
        centre, extent, has_ink = ink_boxes(flat)
        zoom = 1 + (self.max_zoom - 1) * draw
        room = self.fit / extent.clamp(min=1)
        zoom = torch.minimum(zoom, room).clamp(min=1)
        out = reframe(flat, centre, zoom)
        out = torch.where(has_ink.view(-1, 1, 1, 1), out, flat)
        return out.reshape(images.shape)

    def __repr__(self) -> str:
        return f"FrameAugment(max_zoom={self.max_zoom}, fit={self.fit})"
