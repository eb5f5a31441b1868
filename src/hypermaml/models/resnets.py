"""Residual networks, plain or hyper, from one code path: a ConvFactory makes every convolution.

Families (any image size and channel count; global average pool before the classifier):
- ``resnet18``, ``resnet34``: the CIFAR ResNets of DeVries & Taylor's cutout code: 3x3 stem conv
  (64), no max-pool, post-activation BasicBlocks [2, 2, 2, 2] / [3, 4, 6, 3] of widths
  64-128-256-512, 1x1 conv + BN shortcuts where the shape changes.
- ``WideResNet(depth, k)``, named ``wrn_<depth>_<k>`` (``wrn_16_2``, ``wrn_28_4``, ...): Zagoruyko
  & Komodakis: 3x3 stem conv (16), three stages of (depth - 4) / 6 pre-activation blocks of widths
  16k, 32k, 64k (1x1 conv shortcuts, no BN, where the shape changes), no dropout, final BN-ReLU.
- ``resnet12``: the few-shot ResNet-12: four blocks of 3 x [3x3 conv, BN, LeakyReLU 0.1] (the
  third LeakyReLU after the residual sum) with a 1x1 conv + BN shortcut, then a 2x2 max-pool;
  widths 64-160-320-640; ``out_dim`` = 640. With ``drop_rate`` > 0, FEAT's regularisation in
  training: dropout after blocks 1-2 and DropBlock (``dropblock.py``) after blocks 3-4.
- ``resnet10`` (``resnet10.py``): CloserLook's ResNet-10, the BasicBlocks below behind a 7x7/2
  stem and a 3x3/2 max-pool.

``hyper`` (``models/hyperconv.py``): ``"none"`` plain; ``"stage"`` (variant 1) one HyperNetwork
per stage, shared by the stage's stride-1 3x3 convs whose C_in is the stage width; ``"layer"``
(variant 2) a HyperNetwork of its own for every 3x3 conv inside the stages. The stem and the 1x1
shortcuts are always plain. ``frozen_seed`` freezes the embeddings, drawn from (seed, index of the
hyper layer in construction order). Plain convs start with He variance 2 / (C_in k^2), as the
generated ones do.

Every network has ``features(x)``: [B, C, H, W] -> [B, out_dim] and ``forward(x)``: -> logits
[B, num_classes] (the features when ``num_classes`` is 0), and records its constructor arguments
in ``build_args`` so that ``export.to_plain`` can build its plain twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import wrn_problem
from .config import HyperMode
from .dropblock import DropBlock
from .hyperconv import HyperConv2d, HyperNetwork

HYPER_MODES = ("none", "stage", "layer")


class ConvFactory:
    """Makes the convolutions of one network; the network registers ``hypernets`` (variant 1)."""

    def __init__(
        self, hyper: HyperMode = "none", hyper_bias: bool = False, frozen_seed: int | None = None
    ) -> None:
        if hyper not in HYPER_MODES:
            raise ValueError(f"unknown hyper mode {hyper!r}; choose {', '.join(HYPER_MODES)}")
        if frozen_seed is not None and hyper == "none":
            raise ValueError("frozen_seed compresses hyper layers: use hyper='stage' or 'layer'")
        self.hyper, self.hyper_bias, self.frozen_seed = hyper, hyper_bias, frozen_seed
        self.hypernets = nn.ModuleDict()
        self.n_hyper_layers = 0

    def plain(self, c_in: int, c_out: int, kernel_size: int, stride: int = 1) -> nn.Conv2d:
        """A bias-free conv with 'same' padding and He-normal (fan-in) weights."""
        conv = nn.Conv2d(c_in, c_out, kernel_size, stride, kernel_size // 2, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
        return conv

    def conv3x3(self, c_in: int, c_out: int, stride: int, stage: int, width: int) -> nn.Module:
        """A 3x3 conv inside stage ``stage`` (1-based) whose width is ``width``."""
        if self.hyper == "none" or (self.hyper == "stage" and (c_in != width or stride != 1)):
            return self.plain(c_in, c_out, 3, stride)
        hypernet = None
        if self.hyper == "stage":
            key = f"stage{stage}"
            if key not in self.hypernets:
                self.hypernets[key] = HyperNetwork(width, width, 3, self.hyper_bias)
            hypernet = self.hypernets[key]
        layer = HyperConv2d(
            c_in, c_out, 3, stride, hypernet=hypernet, bias=self.hyper_bias,
            frozen_seed=self.frozen_seed, layer_index=self.n_hyper_layers,
        )  # fmt: skip
        self.n_hyper_layers += 1
        return layer


class ResidualNetwork(nn.Module):
    """Shared tail: ``body`` -> global average pool -> ``fc``. Subclasses build stem and body."""

    build_args: dict[str, Any]
    out_dim: int

    def _finish(self, convs: ConvFactory, out_dim: int, num_classes: int) -> None:
        self.hypernets = convs.hypernets  # the one registration of the shared hypernetworks
        self.out_dim = out_dim
        self.fc = nn.Linear(out_dim, num_classes) if num_classes > 0 else nn.Identity()

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, out_dim, h, w]."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> pooled embedding [B, out_dim]."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> logits [B, num_classes]."""
        return self.fc(self.features(x))


class BasicBlock(nn.Module):
    """Post-activation residual block: relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))."""

    def __init__(self, convs: ConvFactory, c_in: int, c_out: int, stride: int, stage: int) -> None:
        super().__init__()
        self.conv1 = convs.conv3x3(c_in, c_out, stride, stage, c_out)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = convs.conv3x3(c_out, c_out, 1, stage, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            conv = convs.plain(c_in, c_out, 1, stride)
            self.shortcut = nn.Sequential(conv, nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def residual_stages(
    convs: ConvFactory,
    blocks: Sequence[int],
    c_in: int,
    base_width: int,
    block: type[nn.Module] = BasicBlock,
) -> tuple[nn.Sequential, int]:
    """Stages of ``blocks[i]`` blocks (``BasicBlock`` or ``PreActBlock``) of width
    ``base_width`` x 2^i, each stage after the first halving the resolution in its first block;
    returns (stages, their output width)."""
    stages = []
    for i, n in enumerate(blocks):
        width = base_width * 2**i
        strides = [1 if i == 0 else 2] + [1] * (n - 1)
        stages.append(nn.Sequential(*(
            block(convs, c_in if j == 0 else width, width, s, i + 1)
            for j, s in enumerate(strides)
        )))  # fmt: skip
        c_in = width
    return nn.Sequential(*stages), c_in


class CifarResNet(ResidualNetwork):
    """ResNet-18/34 of the cutout code; widths ``base_width`` x (1, 2, 4, 8)."""

    def __init__(
        self,
        blocks: Sequence[int],
        in_channels: int = 3,
        num_classes: int = 10,
        base_width: int = 64,
        hyper: HyperMode = "none",
        hyper_bias: bool = False,
        frozen_seed: int | None = None,
    ) -> None:
        super().__init__()
        self.build_args = dict(
            blocks=tuple(blocks), in_channels=in_channels, num_classes=num_classes,
            base_width=base_width, hyper=hyper, hyper_bias=hyper_bias, frozen_seed=frozen_seed,
        )  # fmt: skip
        convs = ConvFactory(hyper, hyper_bias, frozen_seed)
        self.stem = convs.plain(in_channels, base_width, 3)
        self.bn = nn.BatchNorm2d(base_width)
        self.stages, c_out = residual_stages(convs, blocks, base_width, base_width)
        self._finish(convs, c_out, num_classes)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(F.relu(self.bn(self.stem(x))))


class PreActBlock(nn.Module):
    """Wide-ResNet block: conv(relu(bn(conv(relu(bn(x)))))) + x, or + conv1x1(relu(bn(x)))."""

    def __init__(self, convs: ConvFactory, c_in: int, c_out: int, stride: int, stage: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = convs.conv3x3(c_in, c_out, stride, stage, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = convs.conv3x3(c_out, c_out, 1, stage, c_out)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = convs.plain(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        return out + (x if self.shortcut is None else self.shortcut(act))


class WideResNet(ResidualNetwork):
    """WRN-``depth``-``widen_factor`` (Zagoruyko & Komodakis), dropout 0."""

    def __init__(
        self,
        depth: int,
        widen_factor: int,
        in_channels: int = 3,
        num_classes: int = 10,
        hyper: HyperMode = "none",
        hyper_bias: bool = False,
        frozen_seed: int | None = None,
    ) -> None:
        super().__init__()
        if problem := wrn_problem(depth, widen_factor):
            raise ValueError(problem)
        self.build_args = dict(
            depth=depth, widen_factor=widen_factor, in_channels=in_channels,
            num_classes=num_classes, hyper=hyper, hyper_bias=hyper_bias, frozen_seed=frozen_seed,
        )  # fmt: skip
        convs = ConvFactory(hyper, hyper_bias, frozen_seed)
        n = (depth - 4) // 6
        self.stem = convs.plain(in_channels, 16, 3)
        self.stages, c_out = residual_stages(convs, [n] * 3, 16, 16 * widen_factor, PreActBlock)
        self.bn = nn.BatchNorm2d(c_out)
        self._finish(convs, c_out, num_classes)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.stages(self.stem(x))))


class ResNet12Block(nn.Module):
    """3 x [3x3 conv, BN, LeakyReLU 0.1] (the last activation after the sum), then max-pool 2,
    then ``drop`` (dropout or DropBlock in training) if given."""

    def __init__(
        self,
        convs: ConvFactory,
        c_in: int,
        c_out: int,
        stage: int,
        drop: DropBlock | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = convs.conv3x3(c_in, c_out, 1, stage, c_out)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = convs.conv3x3(c_out, c_out, 1, stage, c_out)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv3 = convs.conv3x3(c_out, c_out, 1, stage, c_out)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(convs.plain(c_in, c_out, 1), nn.BatchNorm2d(c_out))
        self.drop = drop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.bn1(self.conv1(x)), 0.1)
        out = F.leaky_relu(self.bn2(self.conv2(out)), 0.1)
        out = F.leaky_relu(self.bn3(self.conv3(out)) + self.shortcut(x), 0.1)
        out = F.max_pool2d(out, 2)
        return out if self.drop is None else self.drop(out)


class ResNet12(ResidualNetwork):
    """The few-shot ResNet-12; each block is a stage. A 84x84 image ends as 5x5 before pooling
    (images need 16 pixels a side: four 2x2 max-pools). ``drop_rate`` > 0: dropout after the
    first half of the blocks, DropBlock of ``drop_block_size`` after the others (FEAT: 0.1, 5)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 0,
        widths: Sequence[int] = (64, 160, 320, 640),
        hyper: HyperMode = "none",
        hyper_bias: bool = False,
        frozen_seed: int | None = None,
        drop_rate: float = 0.0,
        drop_block_size: int = 5,
    ) -> None:
        super().__init__()
        self.build_args = dict(
            in_channels=in_channels, num_classes=num_classes, widths=tuple(widths), hyper=hyper,
            hyper_bias=hyper_bias, frozen_seed=frozen_seed, drop_rate=drop_rate,
            drop_block_size=drop_block_size,
        )  # fmt: skip
        convs = ConvFactory(hyper, hyper_bias, frozen_seed)
        c_ins = [in_channels, *widths[:-1]]
        half = len(widths) // 2

        def drop(i: int) -> DropBlock | None:
            if drop_rate == 0:
                return None
            return DropBlock(drop_rate, 1 if i < half else drop_block_size)

        self.stages = nn.Sequential(*(
            ResNet12Block(convs, c_in, width, i + 1, drop(i))
            for i, (c_in, width) in enumerate(zip(c_ins, widths))
        ))  # fmt: skip
        self._finish(convs, widths[-1], num_classes)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)


def resnet18(**kwargs: Any) -> CifarResNet:
    return CifarResNet((2, 2, 2, 2), **kwargs)


def resnet34(**kwargs: Any) -> CifarResNet:
    return CifarResNet((3, 4, 6, 3), **kwargs)
