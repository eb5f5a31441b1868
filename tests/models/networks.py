"""Small networks of each residual family, shared by the tests of ``models``."""

from __future__ import annotations

import torch
from torch import nn

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
