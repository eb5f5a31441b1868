"""Any network of ``resnets`` / ``conv4net`` as a few-shot encoder of grouped inputs.

Few-shot methods pass images grouped by task and set, ``x`` [G, n, C, H, W]. With the
``transductive`` BatchNorm policy (docs/architecture.md, "BatchNorm") every group is normalised
with its own batch statistics and no running statistics are kept, exactly as if each group ran
alone; with ``eval`` the network keeps running statistics and uses them in eval mode. The
network's parameters keep their names under ``net.``: MAML's adapted tensors are swapped in by
name (``Encoder.forward``), and a classifier of the same network loads under that prefix.
"""

from __future__ import annotations

import torch
from torch import nn

from .encoder import Encoder
from .resnets import ResidualNetwork


class GroupedEncoder(Encoder):
    """[G, n, C, H, W] -> embeddings [G, n, out_dim]."""

    network_prefix = "net."

    def __init__(self, net: ResidualNetwork, bn: str = "transductive") -> None:
        super().__init__()
        if bn not in ("transductive", "eval"):
            raise ValueError(
                f"model.bn={bn!r} is not available for this backbone; use transductive or eval"
            )
        if bn == "transductive":
            for module in net.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.track_running_stats = False
                    module.running_mean = module.running_var = module.num_batches_tracked = None
        self.net, self.bn = net, bn
        self.out_dim = net.out_dim

    def embed(self, x: torch.Tensor, step: int = 0) -> torch.Tensor:
        groups, n = x.shape[:2]
        if groups == 1 or (self.bn == "eval" and not self.training):
            return self.net.features(x.flatten(0, 1)).view(groups, n, -1)
        return torch.stack([self.net.features(group) for group in x])
