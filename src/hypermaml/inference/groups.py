"""How query images are grouped for transductive BatchNorm under ``statistics="support"``."""

from __future__ import annotations

import torch


def with_support(support: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
    """Each query in its own group after the support set: support [S, C, H, W] and queries
    [Q, C, H, W] -> groups [Q, S + 1, C, H, W] (the query last)."""
    q = queries.shape[0]
    return torch.cat([support[None].expand(q, *support.shape), queries[:, None]], 1)
