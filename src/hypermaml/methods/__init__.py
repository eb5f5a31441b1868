"""Few-shot methods, one file each, on the contract of ``base.Method``."""

from .base import Method, TaskParams
from .build import build_method
from .checkpoint import FewShotCheckpoint, load_method, load_weights, save_method
from .hypermaml import HyperMAML
from .maml import MAML
from .protonet import ProtoNet

__all__ = [
    "MAML",
    "FewShotCheckpoint",
    "HyperMAML",
    "Method",
    "ProtoNet",
    "TaskParams",
    "build_method",
    "load_method",
    "load_weights",
    "save_method",
]
