"""Small networks of each residual family and narrow encoders of each backbone, shared by the
tests of ``models``, ``methods`` and ``reliability``."""

from __future__ import annotations

import torch
from torch import nn

from hypermaml.models import Conv4, Encoder, GroupedEncoder
from hypermaml.models.conv4net import Conv4Net
from hypermaml.models.resnet10 import ResNet10
from hypermaml.models.resnets import CifarResNet, ResNet12, WideResNet


def tiny(family: str, hyper: str, **kwargs) -> nn.Module:
    """Small members of each family (3 input channels, 5 classes) for 16x16 images."""
    args = {"in_channels": 3, "num_classes": 5, "hyper": hyper, **kwargs}
    if family == "wrn":
        return WideResNet(10, 1, **args)
    if family == "resnet18":
        return CifarResNet((2, 2, 2, 2), base_width=8, **args)
    return ResNet12(widths=(8, 8, 16, 16), **args)


def randomise_batchnorm(model: nn.Module, steps: int = 3) -> None:
    """Random BN affine parameters and a few running-statistics updates from random batches."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(8, 3, 16, 16) * 2 + 0.5)
    model.eval()


BACKBONES = ("conv4", "conv4pool", "resnet10", "resnet12", "resnet12_dropblock", "resnet18", "wrn")
"""A member of each backbone family of ``models/backbones.py`` (``wrn``: a wide ResNet)."""
HYPER_MODES = ("none", "stage", "layer")


def narrow_encoder(
    backbone: str,
    hyper: str = "none",
    bn: str = "transductive",
    bn_steps: int = 1,
    channels: int = 3,
    size: int = 16,
) -> Encoder:
    """The encoder ``build_encoder`` makes for ``backbone``, with every width cut to 4-16
    channels so that a method's meta-step on it takes milliseconds."""
    if backbone in ("conv4", "conv4pool") and hyper == "none":
        pool = backbone == "conv4pool"
        return Conv4(channels, size, width=4, bn=bn, pool=pool, bn_steps=bn_steps)
    args = {"in_channels": channels, "num_classes": 0, "hyper": hyper}
    nets = {
        "conv4": lambda: Conv4Net(image_size=size, width=4, **args),
        "conv4pool": lambda: Conv4Net(image_size=size, width=4, pool=True, **args),
        "resnet10": lambda: ResNet10(base_width=4, **args),
        "resnet12": lambda: ResNet12(widths=(4, 6, 8, 8), **args),
        "resnet12_dropblock": lambda: ResNet12(
            widths=(4, 6, 8, 8), drop_rate=0.1, drop_block_size=2, **args
        ),
        "resnet18": lambda: CifarResNet((2, 2, 2, 2), base_width=4, **args),
        "wrn": lambda: WideResNet(10, 1, **args),
    }
    return GroupedEncoder(nets[backbone](), bn, bn_steps)  # type: ignore[arg-type]
