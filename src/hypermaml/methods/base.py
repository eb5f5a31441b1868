"""The contract every few-shot method implements.

A method turns a support set into task parameters (``adapt``) and uses them to classify a query
set (``predict``); meta-training minimises the query loss of that, averaged over the tasks of a
batch (``meta_loss``). Tasks travel batched, with a leading task dimension B.

Every method names its parts alike: ``encoder`` (an ``models.encoder.Encoder``, the only thing
it knows of the backbone) and, where it has one, ``head`` (the linear classifier that
adaptation updates). ``legacy_keys`` maps weight names of files written before that naming.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import TaskBatch

TaskParams = dict[str, torch.Tensor]
"""Plain tensors with a leading task dimension B (prototypes, adapted weights, ...)."""


class Method(nn.Module, ABC):
    """Base of all few-shot methods.

    ``n_way`` is the number of classes per task the method is built for; methods whose task
    parameters do not depend on it (ProtoNet) accept any N at prediction time.
    """

    legacy_keys: ClassVar[dict[str, str]] = {}
    """Old weight-name prefix -> current one (``checkpoint.load_weights_into``)."""

    def __init__(self, n_way: int) -> None:
        super().__init__()
        self.n_way = n_way
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Tell the method which training epoch runs (for schedules such as the warm-up)."""
        self.epoch = epoch

    @abstractmethod
    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor) -> TaskParams:
        """support_x [B, N*K, C, H, W], support_y [B, N*K] (labels 0..N-1) -> task parameters."""

    @abstractmethod
    def predict(self, query_x: torch.Tensor, params: TaskParams) -> torch.Tensor:
        """query_x [B, M, C, H, W] -> logits [B, M, N]."""

    def forward(self, batch: TaskBatch) -> torch.Tensor:
        """Query logits [B, N*Q, N] of a batch of tasks."""
        self.check_n_way(batch.n_way)
        return self.predict(batch.query_x, self.adapt(batch.support_x, batch.support_y))

    def classifier_update(
        self, support_x: torch.Tensor, support_y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """How adaptation changes the linear classifier: (delta weight [B, N, D], delta bias
        [B, N]). Methods without a universal classifier that adapts (ProtoNet) have none."""
        raise ValueError(
            f"{type(self).__name__} has no classifier that adaptation updates; the update "
            f"magnitude applies to HyperMAML and MAML checkpoints"
        )

    def meta_loss(self, batch: TaskBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean query cross-entropy over the tasks, query logits [B, N*Q, N])."""
        logits = self(batch)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())
        return loss, logits

    def tasks_are_independent(self) -> bool:
        """Whether tasks may be run in separate calls (threads) with the result of one call:
        true unless a module keeps running statistics, which every training call updates."""
        return not any(name.endswith("running_mean") for name, _ in self.named_buffers())

    def check_n_way(self, n_way: int) -> None:
        if n_way != self.n_way:
            raise ValueError(
                f"this {type(self).__name__} has a {self.n_way}-way classifier and cannot score "
                f"{n_way}-way tasks; evaluate with --n-way {self.n_way} or train a "
                f"{n_way}-way model"
            )


def one_hot_class_means(values: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Mean of ``values`` [B, M, F] per label: labels [B, M] in 0..N-1 -> [B, N, F]."""
    onehot = F.one_hot(labels, n_way).to(values.dtype)  # [B, M, N]
    sums = onehot.transpose(1, 2) @ values  # [B, N, F]
    return sums / onehot.sum(1).clamp_min(1.0)[..., None]
