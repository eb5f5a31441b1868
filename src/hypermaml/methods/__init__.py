"""Few-shot methods, one file each, on the contract of ``base.Method``."""

from ..config import ExperimentConfig, HyperMAMLConfig, MAMLConfig, ProtoNetConfig
from ..models import build_backbone
from .base import Method, TaskParams
from .hypermaml import HyperMAML
from .maml import MAML
from .protonet import ProtoNet


def build_method(cfg: ExperimentConfig, in_channels: int, image_size: int) -> Method:
    """The method a config describes, with freshly initialised weights."""
    n_way, method = cfg.data.n_way, cfg.method
    bn_steps = 1
    if isinstance(method, MAMLConfig):  # one BatchNorm set per inner step and one for the query
        bn_steps = max(method.inner_steps, method.inner_steps_test or 0) + 1
    model = cfg.model
    encoder = build_backbone(
        model.backbone, in_channels, image_size, model.bn, bn_steps, model.hyper
    )
    if isinstance(method, HyperMAMLConfig):
        return HyperMAML(encoder, n_way, method)
    if isinstance(method, MAMLConfig):
        return MAML(encoder, n_way, method)
    if isinstance(method, ProtoNetConfig):
        return ProtoNet(encoder, n_way)
    raise ValueError(f"unknown method config {method!r}")


__all__ = ["HyperMAML", "MAML", "Method", "ProtoNet", "TaskParams", "build_method"]
