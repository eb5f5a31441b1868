"""Prototypical Networks (Snell et al., 2017): classify by the nearest class-mean embedding."""

from __future__ import annotations

import torch

from ..models.encoder import Encoder
from .base import Method, TaskParams, one_hot_class_means


class ProtoNet(Method):
    """Task parameters are the class prototypes; logits are negative squared distances."""

    def __init__(self, encoder: Encoder, n_way: int) -> None:
        super().__init__(n_way)
        self.encoder = encoder

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        embeddings = self.encoder(support_x)  # [B, N*K, D]
        n_way = int(support_y.max()) + 1
        return {"prototypes": one_hot_class_means(embeddings, support_y, n_way)}  # [B, N, D]

    def predict(self, query_x: torch.Tensor, params: TaskParams) -> torch.Tensor:
        queries = self.encoder(query_x)  # [B, M, D]
        prototypes = params["prototypes"]  # [B, N, D]
        # ||q - p||^2 expanded, which (unlike cdist) has a finite gradient at distance 0
        sq = queries.pow(2).sum(-1, keepdim=True) + prototypes.pow(2).sum(-1)[:, None, :]
        return -(sq - 2 * queries @ prototypes.transpose(1, 2))  # [B, M, N]

    def check_n_way(self, n_way: int) -> None:
        """Prototypes adapt to any number of classes."""
