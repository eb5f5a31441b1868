"""The identity encoder, for methods applied to ready-made feature vectors (the 2-D toy)."""

from __future__ import annotations

import torch
from torch import nn


class IdentityEncoder(nn.Module):
    """[G, n, D] -> [G, n, D] unchanged; ``out_dim`` = D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
