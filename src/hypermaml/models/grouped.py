"""Any network of ``resnets`` / ``conv4net`` as a few-shot encoder of grouped inputs.

Few-shot methods pass images grouped by task and set, ``x`` [G, n, C, H, W]. The network's
BatchNorm layers follow the encoder's policy (docs/architecture.md, "BatchNorm"; ``norms``):
``transductive`` normalises every group with its own batch statistics and keeps no running
statistics, exactly as if each group ran alone; ``eval`` keeps running statistics and uses them
in eval mode; ``per_step`` keeps one set per inner-loop step, chosen by ``step``. The network's
parameters keep their names under ``net.``: MAML's adapted tensors are swapped in by name
(``Encoder.forward``), and a classifier of the same network loads under that prefix.
"""

from __future__ import annotations

import torch

from .config import BNPolicy
from .encoder import Encoder
from .norms import StepBatchNorm2d, use_policy_norms
from .resnets import ResidualNetwork


class GroupedEncoder(Encoder):
    """[G, n, C, H, W] -> embeddings [G, n, out_dim]; ``bn_steps``: BatchNorm sets of the
    ``per_step`` policy (one per MAML inner step and one for the query)."""

    network_prefix = "net."

    def __init__(
        self, net: ResidualNetwork, bn: BNPolicy = "transductive", bn_steps: int = 1
    ) -> None:
        super().__init__()
        use_policy_norms(net, bn, bn_steps)
        self.net, self.bn = net, bn
        self.out_dim = net.out_dim

    def embed(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        groups, n = x.shape[:2]
        if self.bn == "per_step":
            for module in self.net.modules():  # this call's module tree: a thread's replica
                if isinstance(module, StepBatchNorm2d):
                    module.step = step
        if groups == 1 or (self.bn != "transductive" and not self.training):
            return self.net.features(x.flatten(0, 1)).view(groups, n, -1)
        return torch.stack([self.net.features(group) for group in x])
