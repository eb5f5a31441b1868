"""Network definitions: encoders for few-shot methods, classifier networks, hyper-convolutions.

``build.py`` builds every network from its config section; ``encoder.py`` is the contract the
methods speak to. What makes them fast on a CPU lives in ``hypermaml.engine``.
"""

from .build import ARCHS, build_encoder, build_network
from .config import ModelConfig, NetworkConfig
from .conv4 import Conv4, GroupBatchNorm2d
from .encoder import Encoder
from .grouped import GroupedEncoder
from .identity import IdentityEncoder

__all__ = [
    "ARCHS",
    "Conv4",
    "Encoder",
    "GroupBatchNorm2d",
    "GroupedEncoder",
    "IdentityEncoder",
    "ModelConfig",
    "NetworkConfig",
    "build_encoder",
    "build_network",
]
