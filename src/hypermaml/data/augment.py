"""Batch augmentation for supervised classification, and the batches that feed training.

Every function works on a whole batch [n, C, H, W] at once (no per-image Python loop) and draws
its randomness from a ``torch.Generator``, so a seed fixes every crop and flip.

Standard augmentations, and the defaults in ``DEFAULT_AUGMENT``:

- CIFAR-10 / CIFAR-100: pad 4 with zeros, random 32x32 crop, random horizontal flip; then
  per-channel normalisation. This is the setup of the ResNet / WideResNet papers (He et al. 2016,
  Zagoruyko & Komodakis 2016, DeVries & Taylor 2017) that the HyperResNets paper follows.
- Fashion-MNIST: no single standard; pad 2 + random 28x28 crop + horizontal flip is common and
  is the default here (clothes are roughly mirror-symmetric, unlike digits: never flip MNIST).

Augment only the train split; normalise both splits with the train split's ``channel_stats``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .classification import LabelledImages


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding by ``padding`` pixels (0 = none), and random h-flip."""

    padding: int = 0
    flip: bool = False


DEFAULT_AUGMENT = {
    "cifar10": Augment(padding=4, flip=True),
    "cifar100": Augment(padding=4, flip=True),
    "fashion_mnist": Augment(padding=2, flip=True),
    # Characters: a mirrored one is another character, and zero padding would frame the white
    # page in black, so none by default.
    "omniglot": Augment(padding=0, flip=False),
    "cross_char": Augment(padding=0, flip=False),
    # The training classes of the natural-image few-shot sets: CIFAR's pad-crop-flip at 32 px,
    # and its analogue at 84 px (pad 8).
    "fc100": Augment(padding=4, flip=True),
    "cifar_fs": Augment(padding=4, flip=True),
    "cub": Augment(padding=8, flip=True),
    "mini_imagenet": Augment(padding=8, flip=True),
}


def crop_at(images: torch.Tensor, padding: int, top: torch.Tensor, left: torch.Tensor):
    """The H x W window at (``top``[i], ``left``[i]) of each zero-padded image.

    images: [n, C, H, W] (any dtype); top, left: int64 [n] in ``0..2*padding``; -> [n, C, H, W].
    Output pixel (y, x) of image i is padded pixel (top[i] + y, left[i] + x).
    """
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    rows = (top[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # [n,1,H,1]
    cols = (left[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # [n,1,1,W]
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(c, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop back to H x W at a random offset per image.

    images: [n, C, H, W] on the generator's device -> [n, C, H, W]. With ``padding`` 0 the
    input itself is returned and the generator is not used.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return images
    n = images.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator,
                            device=generator.device)  # fmt: skip
    return crop_at(images, padding, offsets[0].to(images.device), offsets[1].to(images.device))


def flip_where(images: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """images [n, C, H, W] with those where ``flip`` (bool [n]) is True mirrored left-right."""
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2: the images where
    ``torch.rand(n, generator=generator) < 0.5``."""
    flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
    return flip_where(images, flip.to(images.device))


def augment_batch(images: torch.Tensor, augment: Augment, generator: torch.Generator):
    """Crop, then flip, as ``augment`` says. images: [n, C, H, W] -> same shape and dtype."""
    images = random_crop(images, augment.padding, generator)
    return random_flip(images, generator) if augment.flip else images


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images [n, C, H, W], scaled to [0, 1].

    Exact, from a 256-bin histogram per channel (no float copy of the images).
    """
    values = torch.arange(256, dtype=torch.float64)
    mean, std = [], []
    for c in range(images.shape[1]):
        counts = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        m = (counts * values).sum() / counts.sum()
        var = (counts * (values - m) ** 2).sum() / counts.sum()
        mean.append(float(m) / 255)
        std.append(float(var.sqrt()) / 255)
    return mean, std


def normalise(
    images: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    """(images - mean[c]) / std[c] per channel c. images: float [n, C, H, W]."""
    m = torch.as_tensor(mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    s = torch.as_tensor(std, dtype=images.dtype, device=images.device)[None, :, None, None]
    return (images - m) / s


def batches(
    data: LabelledImages,
    batch_size: int,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    augment: bool | Augment = False,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One pass over ``data``: (images float32 [B, C, H, W], labels int64 [B]) per batch.

    Images are uint8 in memory; each batch is augmented on the CPU while still uint8, moved to
    ``device``, scaled to [0, 1] and, given per-channel ``mean`` and ``std``, normalised.
    ``augment``: True = ``DEFAULT_AUGMENT[data.name]``, or an ``Augment``; False = none.
    ``generator`` (a CPU generator, needed to shuffle or augment) draws the order and the
    augmentation, so one seed gives the same batches. The last, smaller batch is kept unless
    ``drop_last`` (evaluation must keep it, to see every image).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std to normalise, or neither")
    if augment is True:
        if data.name not in DEFAULT_AUGMENT:
            raise ValueError(f"no default augmentation for {data.name!r} (only for "
                             f"{sorted(DEFAULT_AUGMENT)}): pass an Augment")  # fmt: skip
        augment = DEFAULT_AUGMENT[data.name]
    if generator is None and (shuffle or augment):
        raise ValueError("pass a torch.Generator to shuffle or augment (it makes runs repeatable)")
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        images = data.images[index]
        if augment:
            images = augment_batch(images, augment, generator)  # type: ignore[arg-type]
        images = images.to(device=device, non_blocking=True).to(torch.float32).div_(255)
        if mean is not None:
            images = normalise(images, mean, std)  # type: ignore[arg-type]
        yield images, data.labels[index].to(device=device, non_blocking=True)
