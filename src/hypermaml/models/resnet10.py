"""CloserLook's ResNet-10 (Chen et al., 2019, "A Closer Look at Few-shot Classification").

7x7 stride-2 stem conv (64), BatchNorm, ReLU, 3x3 stride-2 max-pool, then one post-activation
BasicBlock per stage (``resnets.BasicBlock``) of widths 64-128-256-512, stages 2-4 halving the
resolution (1x1 conv + BN shortcuts there), and a global average pool: ``out_dim`` = 512. An
84x84 image ends as 3x3 before pooling. ``hyper`` as in ``resnets``: the stem and the shortcuts
stay plain; variant 1 generates the stride-1 3x3 convs (both of stage 1, the second of stages 2-4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import HyperMode
from .resnets import ConvFactory, ResidualNetwork, residual_stages


class ResNet10(ResidualNetwork):
    """``features``: [B, C, H, W] -> [B, 8 * base_width]; ``blocks``: BasicBlocks per stage."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 0,
        base_width: int = 64,
        hyper: HyperMode = "none",
        hyper_bias: bool = False,
        frozen_seed: int | None = None,
        blocks: Sequence[int] = (1, 1, 1, 1),
    ) -> None:
        super().__init__()
        self.build_args = dict(
            in_channels=in_channels, num_classes=num_classes, base_width=base_width, hyper=hyper,
            hyper_bias=hyper_bias, frozen_seed=frozen_seed, blocks=tuple(blocks),
        )  # fmt: skip
        convs = ConvFactory(hyper, hyper_bias, frozen_seed)
        self.stem = convs.plain(in_channels, base_width, 7, stride=2)
        self.bn = nn.BatchNorm2d(base_width)
        self.stages, c_out = residual_stages(convs, blocks, base_width, base_width)
        self._finish(convs, c_out, num_classes)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, out_dim, ~H/32, ~W/32]."""
        x = F.max_pool2d(F.relu(self.bn(self.stem(x))), 3, stride=2, padding=1)
        return self.stages(x)
