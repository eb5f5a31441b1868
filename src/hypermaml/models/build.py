"""Every network is built here, from its config section.

- ``build_encoder``: the encoder of a few-shot method (``model`` of a few-shot config): the fast
  ``Conv4`` for plain ``conv4`` / ``conv4pool``, any other backbone (HyperConv4, ResNet-10/12/18,
  wide ResNets, plain or hyper) as a ``GroupedEncoder`` around the network of ``build_network``.
- ``build_network``: a classifier (``model`` of a classify config) of any name of
  ``backbones.py``, plain or hyper; a few-shot backbone pre-trains as the classifier of its name.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from .backbones import NAMES, name_problem, parse_wrn
from .config import ModelConfig, NetworkConfig
from .conv4 import Conv4
from .conv4net import Conv4Net
from .encoder import Encoder
from .grouped import GroupedEncoder
from .resnet10 import ResNet10
from .resnets import ResidualNetwork, ResNet12, WideResNet, resnet18, resnet34

ARCHS = NAMES
_FIXED = {"resnet10": ResNet10, "resnet12": ResNet12, "resnet18": resnet18, "resnet34": resnet34}
FEAT_DROPBLOCK = {"drop_rate": 0.1, "drop_block_size": 5}
"""``resnet12_dropblock``: FEAT's DropBlock rate and block size."""


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
    if name in ("conv4", "conv4pool"):
        return Conv4Net(image_size=image_size, pool=name == "conv4pool", **kwargs)
    if name == "resnet12_dropblock":
        return ResNet12(**kwargs, **FEAT_DROPBLOCK)
    if name in _FIXED:
        return _FIXED[name](**kwargs)
    wrn = parse_wrn(name)
    if wrn is None:
        raise ValueError(name_problem(cfg.arch))
    return WideResNet(*wrn, **kwargs)


def build_encoder(
    cfg: ModelConfig, image_shape: tuple[int, int, int], bn_steps: int = 1
) -> Encoder:
    """The encoder ``cfg`` describes, for images of ``image_shape`` (C, H, W); ``bn_steps``:
    BatchNorm sets of the ``per_step`` policy (one per MAML inner step and one for the query).
    Raises ConfigError when the backbone cannot encode images of that shape."""
    in_channels, image_size, _ = image_shape
    name = cfg.backbone.lower()
    try:
        if name in ("conv4", "conv4pool") and cfg.hyper == "none":
            pool = name == "conv4pool"
            return Conv4(in_channels, image_size, bn=cfg.bn, pool=pool, bn_steps=bn_steps)
        network = NetworkConfig(arch=name, hyper=cfg.hyper)
        check_image_shape(network, image_shape)
        net = build_network(network, in_channels, 0, image_size)
    except ValueError as exc:
        raise ConfigError(f"model.backbone={cfg.backbone!r} (hyper {cfg.hyper!r}): {exc}") from exc
    return GroupedEncoder(net, cfg.bn, bn_steps)


def check_image_shape(cfg: NetworkConfig, image_shape: tuple[int, int, int]) -> None:
    """Raise ValueError unless network ``cfg`` turns images of ``image_shape`` (C, H, W) into
    its ``out_dim`` features (tried on the meta device: nothing is allocated or computed)."""
    channels, height, width = image_shape
    with torch.device("meta"):
        net = build_network(cfg, channels, 0, height)
        try:
            out = net.features(torch.empty(2, channels, height, width))
        except RuntimeError as exc:
            raise ValueError(
                f"images of {channels}x{height}x{width} are too small ({exc})"
            ) from exc
    if tuple(out.shape) != (2, net.out_dim):
        raise ValueError(f"images of {channels}x{height}x{width} give features of shape "
                         f"{tuple(out.shape[1:])}, not ({net.out_dim},)")  # fmt: skip
