"""Every network is built here, from its config section.

- ``build_encoder``: the encoder of a few-shot method (``model`` of a few-shot config): the fast
  ``Conv4`` for plain ``conv4`` / ``conv4pool``, any other backbone (HyperConv4, ResNet-12 plain
  or hyper) as a ``GroupedEncoder`` around the network of ``build_network``.
- ``build_network``: a classifier (``model`` of a classify config): Conv4, ResNet-12/18/34 or a
  wide ResNet ``wrn_D_K``, each plain or hyper.
"""

from __future__ import annotations

import re

from .config import ModelConfig, NetworkConfig
from .conv4 import Conv4
from .conv4net import Conv4Net
from .encoder import Encoder
from .grouped import GroupedEncoder
from .resnets import ResidualNetwork, ResNet12, WideResNet, resnet18, resnet34

ARCHS = (
    "conv4, resnet12, resnet18, resnet34, wrn_<depth>_<k> (depth = 6n + 4: wrn_16_2, wrn_28_4, ...)"
)
_FIXED = {"resnet12": ResNet12, "resnet18": resnet18, "resnet34": resnet34}
_WRN = re.compile(r"wrn[_-](\d+)[_-](\d+)")


def build_network(
    cfg: NetworkConfig, in_channels: int, num_classes: int, image_size: int = 28
) -> ResidualNetwork:
    """The network ``cfg`` names (``resnet18``, ``wrn_28_4``, ...) with ``num_classes`` logits
    (its features when 0); ``image_size`` matters only to ``conv4``, whose features are the
    flattened final map."""
    kwargs = dict(
        in_channels=in_channels, num_classes=num_classes, hyper=cfg.hyper,
        hyper_bias=cfg.hyper_bias, frozen_seed=cfg.frozen_seed,
    )  # fmt: skip
    name = cfg.arch.lower()
    if name == "conv4":
        return Conv4Net(image_size=image_size, **kwargs)
    if name in _FIXED:
        return _FIXED[name](**kwargs)
    match = _WRN.fullmatch(name)
    if match:
        return WideResNet(int(match[1]), int(match[2]), **kwargs)
    raise ValueError(f"unknown architecture {cfg.arch!r}; choose one of {ARCHS}")


def build_encoder(
    cfg: ModelConfig, image_shape: tuple[int, int, int], bn_steps: int = 1
) -> Encoder:
    """The encoder ``cfg`` describes, for images of ``image_shape`` (C, H, W); ``bn_steps``:
    BatchNorm sets of the ``per_step`` policy (one per MAML inner step and one for the query)."""
    in_channels, image_size, _ = image_shape
    if cfg.backbone in ("conv4", "conv4pool") and cfg.hyper == "none":
        pool = cfg.backbone == "conv4pool"
        return Conv4(in_channels, image_size, bn=cfg.bn, pool=pool, bn_steps=bn_steps)
    if cfg.backbone in ("conv4", "resnet12"):
        network = NetworkConfig(arch=cfg.backbone, hyper=cfg.hyper)
        return GroupedEncoder(build_network(network, in_channels, 0, image_size), cfg.bn)
    raise ValueError(
        f"unknown backbone {cfg.backbone!r} (hyper {cfg.hyper!r}); choose conv4, conv4pool "
        f"(plain only) or resnet12"
    )
