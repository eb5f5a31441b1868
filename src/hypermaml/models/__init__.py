"""Backbones (encoders) and heads."""

from .conv4 import Conv4, GroupBatchNorm2d, build_backbone
from .identity import IdentityEncoder

__all__ = ["Conv4", "GroupBatchNorm2d", "IdentityEncoder", "build_backbone"]
