"""A method, freshly initialised, from a few-shot config."""

from __future__ import annotations

from ..config import ExperimentConfig, HyperMAMLConfig, MAMLConfig, ProtoNetConfig
from ..data.datasets import image_shape as dataset_image_shape
from ..models.build import build_encoder
from .base import Method
from .hypermaml import HyperMAML
from .maml import MAML
from .protonet import ProtoNet


def build_method(cfg: ExperimentConfig, image_shape: tuple[int, int, int] | None = None) -> Method:
    """The method ``cfg`` describes, with freshly initialised weights, for images of
    ``image_shape`` (C, H, W; default: those of ``cfg.data.dataset``)."""
    n_way, method = cfg.data.n_way, cfg.method
    if image_shape is None:
        image_shape = dataset_image_shape(cfg.data.dataset, cfg.data.load_options()["folder"])
    shape = tuple(image_shape)
    bn_steps = 1
    if isinstance(method, MAMLConfig):  # one BatchNorm set per inner step and one for the query
        bn_steps = max(method.inner_steps, method.inner_steps_test or 0) + 1
    encoder = build_encoder(cfg.model, shape, bn_steps)
    if isinstance(method, HyperMAMLConfig):
        return HyperMAML(encoder, n_way, method)
    if isinstance(method, MAMLConfig):
        return MAML(encoder, n_way, method)
    if isinstance(method, ProtoNetConfig):
        return ProtoNet(encoder, n_way)
    raise ValueError(f"unknown method config {method!r}")
