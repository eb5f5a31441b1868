"""BatchNorm layers of a network inside a ``GroupedEncoder``, one per BatchNorm policy.

A classifier network (``resnets``, ``conv4net``) is built with ``nn.BatchNorm2d``; as a few-shot
encoder its BatchNorm follows the encoder's policy (docs/architecture.md, "BatchNorm"), so
``use_policy_norms`` swaps each layer for the policy's own:

- ``transductive``: ``BatchStatsNorm2d``, batch statistics always, no running statistics;
  ``weight`` and ``bias`` [C], the names and shapes of the layer it replaces.
- ``eval``: the network's ``nn.BatchNorm2d`` as it is.
- ``per_step``: ``StepBatchNorm2d``, one set of affine parameters and running statistics per
  inner-loop step (MAML++); ``weight``, ``bias``, ``running_mean``, ``running_var`` [steps, C]
  and its ``step`` attribute picks the set (``GroupedEncoder.embed`` sets it).

Under ``torch.func`` transforms both apply the affine parameters outside ``F.batch_norm``: its
second derivative with respect to them came out wrong under ``vmap`` (torch 2.13), which made
MAML's batched meta-gradient differ from the per-task one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.kernels import is_functorch_wrapped
from .config import BNPolicy


def _batch_norm(
    x: torch.Tensor,
    mean: torch.Tensor | None,
    var: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor,
    training: bool,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """``F.batch_norm`` of x [B, C, H, W] with weight, bias [C]; exact under torch.func."""
    if is_functorch_wrapped(x) or is_functorch_wrapped(weight):
        y = F.batch_norm(x, mean, var, None, None, training, momentum, eps)
        return torch.addcmul(bias[:, None, None], y, weight[:, None, None])
    return F.batch_norm(x, mean, var, weight, bias, training, momentum, eps)


class BatchStatsNorm2d(nn.Module):
    """BatchNorm with the statistics of the batch it is given, in training and at test."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, H, W], normalised per channel over the B images."""
        return _batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class StepBatchNorm2d(nn.Module):
    """BatchNorm with one set of affine parameters and running statistics per inner step."""

    def __init__(
        self, channels: int, n_steps: int, eps: float = 1e-5, momentum: float = 0.1
    ) -> None:
        super().__init__()
        if n_steps < 1:
            raise ValueError(f"per-step BatchNorm needs at least one set, got {n_steps}")
        self.eps, self.momentum = eps, momentum
        self.step = 0
        """The inner-loop step whose set the next forward uses (the last set beyond them)."""
        self.weight = nn.Parameter(torch.ones(n_steps, channels))
        self.bias = nn.Parameter(torch.zeros(n_steps, channels))
        self.register_buffer("running_mean", torch.zeros(n_steps, channels))
        self.register_buffer("running_var", torch.ones(n_steps, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C, H, W]: batch statistics in training (updating the step's
        running statistics), the step's running statistics in eval mode."""
        i = min(self.step, self.weight.shape[0] - 1)
        return _batch_norm(
            x, self.running_mean[i], self.running_var[i], self.weight[i], self.bias[i],
            self.training, self.momentum, self.eps,
        )  # fmt: skip


def use_policy_norms(net: nn.Module, policy: BNPolicy, n_steps: int = 1) -> list[nn.Module]:
    """Swap every ``nn.BatchNorm2d`` of ``net`` (in place) for the layer of ``policy``, keeping
    its affine parameters (copied into every per-step set); returns the new layers."""
    if policy not in ("transductive", "eval", "per_step"):
        raise ValueError(
            f"unknown BatchNorm policy {policy!r}; choose transductive, eval, per_step"
        )
    if policy == "eval":
        return []
    swapped: list[nn.Module] = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.BatchNorm2d):
                continue
            channels, weight = child.num_features, child.weight
            with torch.device(weight.device):  # meta too, when a network is only measured
                if policy == "transductive":
                    norm: nn.Module = BatchStatsNorm2d(channels, child.eps)
                else:
                    norm = StepBatchNorm2d(channels, n_steps, child.eps, child.momentum or 0.1)
            norm = norm.to(weight.dtype)
            with torch.no_grad():
                norm.weight.copy_(weight.detach().expand_as(norm.weight))
                norm.bias.copy_(child.bias.detach().expand_as(norm.bias))
            setattr(parent, name, norm)
            swapped.append(norm)
    return swapped
