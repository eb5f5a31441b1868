"""Conv4 built on the conv factory of ``resnets``, so it has hyper counterparts.

Four blocks of [3x3 conv (64), BatchNorm, ReLU, 2x2 max-pool]; a 28x28 image ends as 64 x 1 x 1
and an 84x84 one as 64 x 5 x 5, flattened (64-d or 1,600-d) as in the few-shot literature. The
whole body is one stage of width 64: variant 1 (``hyper="stage"``) shares one hypernetwork among
blocks 2-4 (block 1 reads the image's channels and stays plain); variant 2 (``"layer"``) gives
each of the four convolutions its own. ``models.conv4.Conv4`` is the fast plain encoder of the
few-shot methods; this one exists for HyperConv4 and its export. ``pool=True`` averages the final
map instead (``conv4pool``: a 64-d embedding at any image size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import HyperMode
from .resnets import ConvFactory, ResidualNetwork

WIDTH = 64


def conv4_out_dim(image_size: int, width: int = WIDTH) -> int:
    size = image_size
    for _ in range(4):
        size //= 2
    return width * size * size


class Conv4Net(ResidualNetwork):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 0,
        image_size: int = 28,
        hyper: HyperMode = "none",
        hyper_bias: bool = False,
        frozen_seed: int | None = None,
        width: int = WIDTH,
        pool: bool = False,
    ) -> None:
        super().__init__()
        if conv4_out_dim(image_size, width) == 0:
            raise ValueError(f"images of {image_size}x{image_size} are too small for Conv4 "
                             "(four 2x2 max-pools need 16 pixels a side)")  # fmt: skip
        self.build_args = dict(
            in_channels=in_channels, num_classes=num_classes, image_size=image_size, hyper=hyper,
            hyper_bias=hyper_bias, frozen_seed=frozen_seed, width=width, pool=pool,
        )  # fmt: skip
        self.pool = pool
        convs = ConvFactory(hyper, hyper_bias, frozen_seed)
        self.convs = nn.ModuleList(
            convs.conv3x3(c_in, width, 1, 1, width) for c_in in (in_channels, *[width] * 3)
        )
        self.norms = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(4))
        self._finish(convs, width if pool else conv4_out_dim(image_size, width), num_classes)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.max_pool2d(F.relu(norm(conv(x))), 2)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, out_dim], the flattened (or, with ``pool``, averaged) final map."""
        h = self.body(x)
        return h.mean(dim=(2, 3)) if self.pool else h.flatten(1)
