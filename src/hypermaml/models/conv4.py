"""Conv4: the four-block convolutional encoder of the few-shot literature.

Each block is conv 3x3 (64 channels, padding 1) -> BatchNorm -> ReLU -> max-pool 2, so a 28x28
image becomes a 64-d embedding and an 84x84 image a 1600-d one (64 with ``pool=True``).

Inputs are grouped: ``x`` is [G, n, C, H, W], where a group is one set of one task (the support
set or the query set). With the ``transductive`` BatchNorm policy each group is normalised with
its own batch statistics, exactly as if every task were run on its own, so many tasks can share
one forward pass. Without autograd (evaluation) the transductive blocks run the cache-friendly
rewrite of ``fused_block``, which computes the same function.

BatchNorm policies (docs/architecture.md, "BatchNorm"), recorded with every result:
- ``transductive``: batch statistics of each group, in training and at test; no running statistics.
- ``eval``: batch statistics in training, running statistics at evaluation.
- ``per_step``: as ``eval``, but with one set of affine parameters and running statistics per
  inner-loop step (MAML++); ``forward(x, step=i)`` picks the set.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.fused_block import conv_bn_pool_relu_inference, one_channel_block
from ..engine.kernels import autocasting, conv3x3, is_exporting, is_functorch_wrapped
from .config import BNPolicy
from .encoder import Encoder


class GroupBatchNorm2d(nn.Module):
    """BatchNorm over [G * n, C, H, W] under one of the three policies above."""

    def __init__(
        self, channels: int, policy: BNPolicy, n_steps: int = 1, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if policy not in ("transductive", "eval", "per_step"):
            raise ValueError(f"unknown BatchNorm policy {policy!r}")
        self.policy, self.eps, self.momentum = policy, eps, 0.1
        sets = n_steps if policy == "per_step" else 1
        self.weight = nn.Parameter(torch.ones(sets, channels))
        self.bias = nn.Parameter(torch.zeros(sets, channels))
        if policy != "transductive":
            self.register_buffer("running_mean", torch.zeros(sets, channels))
            self.register_buffer("running_var", torch.ones(sets, channels))

    def forward(
        self,
        x: torch.Tensor,
        groups: int = 1,
        step: int = 0,
        weight: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``weight``, ``bias``: [sets, C] tensors used in place of the module's own."""
        weight = self.weight if weight is None else weight
        bias = self.bias if bias is None else bias
        i = min(step, weight.shape[0] - 1)
        weight, bias = weight[i], bias[i]
        if self.policy != "transductive":
            return F.batch_norm(
                x, self.running_mean[i], self.running_var[i], weight, bias,
                self.training, self.momentum, self.eps,
            )  # fmt: skip
        # one batch_norm per group: on channels_last input each stays channels_last, which
        # keeps the max-pool that follows fast (a single call on a regrouped view does not)
        n = x.shape[0] // groups
        parts = [self._normalize(part, weight, bias) for part in x.split(n)]
        return parts[0] if groups == 1 else torch.cat(parts)

    def portable(
        self, x: torch.Tensor, groups: int, step: int, weight: torch.Tensor, bias: torch.Tensor
    ) -> torch.Tensor:
        """``forward`` in plain operators only, for a graph export (ONNX): the groups as a
        leading dimension, whatever their count; ``weight``, ``bias``: [sets, C]. The group
        statistics are taken in float64: a runtime's float32 reductions lose digits to a large
        mean (grey characters on a white page)."""
        i = min(step, weight.shape[0] - 1)
        weight, bias = weight[i][:, None, None], bias[i][:, None, None]  # [C, 1, 1]
        if self.policy != "transductive":
            mean, var = self.running_mean[i][:, None, None], self.running_var[i][:, None, None]
            return (x - mean) * torch.rsqrt(var + self.eps) * weight + bias
        g = x.reshape(groups, -1, *x.shape[1:]).double()  # [G, n, C, H, W]
        mean = g.mean(dim=(1, 3, 4), keepdim=True)
        centred = g - mean
        var = centred.pow(2).mean(dim=(1, 3, 4), keepdim=True)
        g = (centred * torch.rsqrt(var + self.eps)).to(x.dtype) * weight + bias
        return g.reshape(x.shape)

    def _normalize(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Batch-statistics BatchNorm of one group [n, C, H, W]."""
        if is_functorch_wrapped(x):
            # Under torch.func.vmap, batch_norm's second derivative with respect to its affine
            # parameters came out wrong (torch 2.13); applying them outside is exact.
            y = F.batch_norm(x, None, None, None, None, True, 0.0, self.eps)
            return torch.addcmul(bias[:, None, None], y, weight[:, None, None])
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, self.eps)


class Conv4(Encoder):
    """Four conv blocks; ``forward``: [G, n, C, H, W] -> [G, n, out_dim], ``params`` natively."""

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        width: int = 64,
        bn: BNPolicy = "transductive",
        pool: bool = False,
        bn_steps: int = 1,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels, size = in_channels, image_size
        for _ in range(4):
            self.convs.append(nn.Conv2d(channels, width, 3, padding=1))
            self.norms.append(GroupBatchNorm2d(width, bn, bn_steps))
            channels, size = width, size // 2
        if size < 1:
            raise ValueError(f"images of {image_size}x{image_size} are too small for Conv4")
        self.pool = pool
        self.out_dim = width if pool else width * size * size

    def forward(
        self, x: torch.Tensor, step: int = 0, params: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """``params``: tensors used in place of the module's parameters of the same names
        (``convs.0.weight``, ``norms.3.bias``, ...), such as MAML's adapted weights. The module
        itself is left untouched, so threads may call it with different ``params`` at once."""
        groups, n = x.shape[:2]
        h = x.reshape(groups * n, *x.shape[2:])
        layers = self._layers(params or {})
        transductive = self.norms[0].policy == "transductive"
        if is_exporting():
            for norm, (conv_w, conv_b, bn_w, bn_b) in zip(self.norms, layers):
                h = F.conv2d(h, conv_w, conv_b, padding=1)
                h = F.relu(F.max_pool2d(norm.portable(h, groups, step, bn_w, bn_b), 2))
        elif autocasting(h):
            # mixed precision: PyTorch's own convolutions, which autocast runs in bf16 or fp16
            for norm, (conv_w, conv_b, bn_w, bn_b) in zip(self.norms, layers):
                h = F.conv2d(h, conv_w, conv_b, padding=1)
                h = F.relu(F.max_pool2d(norm(h, groups, step, bn_w, bn_b), 2))
        elif transductive and not torch.is_grad_enabled() and not is_functorch_wrapped(h):
            for norm, (conv_w, conv_b, bn_w, bn_b) in zip(self.norms, layers):
                h = conv_bn_pool_relu_inference(
                    h, conv_w, conv_b, bn_w[0], bn_b[0], groups, norm.eps
                )
        else:
            h = self._blocks(h, groups, step, layers)
        h = h.mean(dim=(2, 3)) if self.pool else h.flatten(1)
        return h.reshape(groups, n, -1)

    def network_free_keys(self) -> set[str]:
        """The convolution biases: a classifier's convolutions have none (BatchNorm follows)."""
        return {f"convs.{i}.bias" for i in range(len(self.convs))}

    def _layers(self, params: Mapping[str, torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        """(conv weight, conv bias, BN weight, BN bias) of each block, ``params`` first."""
        layers = []
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            layers.append((
                params.get(f"convs.{i}.weight", conv.weight),
                params.get(f"convs.{i}.bias", conv.bias),
                params.get(f"norms.{i}.weight", norm.weight),
                params.get(f"norms.{i}.bias", norm.bias),
            ))  # fmt: skip
        return layers

    def _blocks(
        self, h: torch.Tensor, groups: int, step: int, layers: list[tuple[torch.Tensor, ...]]
    ) -> torch.Tensor:
        """The four blocks with autograd: [G * n, C_in, H, W] -> [G * n, width, h, w]."""
        plain = not is_functorch_wrapped(h)  # memory formats cannot be chosen inside vmap
        if plain:
            h = h.contiguous(memory_format=torch.channels_last)
        for norm, (conv_w, conv_b, bn_w, bn_b) in zip(self.norms, layers):
            if plain and h.shape[1] == 1 and norm.policy == "transductive":
                # grey images: BatchNorm folded into the first filters (fused_block)
                h = one_channel_block(h, conv_w, conv_b, bn_w[0], bn_b[0], groups, norm.eps)
                continue
            # max-pool before ReLU: the two commute, and ReLU then touches 4x fewer values
            h = conv3x3(h, conv_w, conv_b, torch.channels_last)
            h = F.relu(F.max_pool2d(norm(h, groups, step, bn_w, bn_b), 2))
        return h
