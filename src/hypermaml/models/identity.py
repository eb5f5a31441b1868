"""The identity encoder, for methods applied to ready-made feature vectors (the 2-D toy)."""

from __future__ import annotations

import torch

from .encoder import Encoder


class IdentityEncoder(Encoder):
    """[G, n, D] -> [G, n, D] unchanged; ``out_dim`` = D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out_dim = dim

    def embed(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        return x
