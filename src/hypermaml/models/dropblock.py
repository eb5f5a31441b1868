"""DropBlock (Ghiasi et al., 2018) as the few-shot ResNet-12 of MetaOptNet and FEAT uses it.

In training, square blocks of ``block_size`` x ``block_size`` positions of each channel are set
to zero and the rest rescaled so that the expected activation is unchanged; in eval mode the
layer is the identity. Block centres are drawn with probability

    gamma = rate / block^2 * H W / ((H - block + 1) (W - block + 1))

so that about ``rate`` of the positions are dropped, blocks lying wholly inside the map (FEAT's
formula; the block shrinks to the map when the map is smaller). FEAT ramps the rate up over the
first 40,000 training calls; here it is fixed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropBlock(nn.Module):
    """[B, C, H, W] -> [B, C, H, W]; ``block_size`` 1 is ordinary (element-wise) dropout."""

    def __init__(self, rate: float, block_size: int) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0 or block_size < 1:
            raise ValueError(f"DropBlock needs 0 <= rate < 1 and block_size >= 1, got {rate}, "
                             f"{block_size}")  # fmt: skip
        self.rate, self.block_size = rate, block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        _, _, height, width = x.shape
        block = min(self.block_size, height, width)
        valid = (height - block + 1) * (width - block + 1)
        gamma = self.rate / block**2 * height * width / valid
        shape = (x.shape[0], x.shape[1], height - block + 1, width - block + 1)
        seeds = torch.bernoulli(torch.full(shape, min(gamma, 1.0), dtype=x.dtype, device=x.device))
        # a seed at (i, j) of the valid grid drops the block [i, i + block) x [j, j + block)
        dropped = F.max_pool2d(F.pad(seeds, [block - 1] * 4), block, stride=1)
        keep = 1.0 - dropped
        return x * keep * (keep.numel() / keep.sum().clamp_min(1.0))

    def extra_repr(self) -> str:
        return f"rate={self.rate}, block_size={self.block_size}"
