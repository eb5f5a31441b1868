"""Start a few-shot method from an encoder pre-trained as a classifier (``hypermaml classify``).

The HyperResNets paper meta-trains from a network pre-trained on the training classes, with its
classifier replaced: the encoder's weights come from the classifier, the method's own head (and
hypernetwork, for HyperMAML) start fresh. Running BatchNorm statistics are dropped when the
encoder normalises transductively. The plain fast ``Conv4`` takes the weights of a plain
``conv4`` classifier: its convolution biases (before BatchNorm, so without effect) keep their
values and per-step BatchNorm parameters all start from the classifier's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..methods import Method
from ..models.grouped import GroupedEncoder
from .checkpoint import CheckpointError
from .classifier_io import load_classifier


def method_encoder(method: Method) -> nn.Module:
    """The encoder of a method (``encoder`` of HyperMAML and ProtoNet, ``net.encoder`` of MAML)."""
    encoder = getattr(method, "encoder", None)
    if encoder is None:
        encoder = method.net.encoder
    return encoder


def _running(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")


@torch.no_grad()
def load_pretrained_encoder(method: Method, path: str | Path, backbone: str, hyper: str) -> int:
    """Copy the encoder weights of classifier checkpoint ``path`` into ``method``; returns the
    number of tensors copied. The classifier must have the method's backbone and hyper mode."""
    model, cfg, _ = load_classifier(path)
    if (cfg.model.arch, cfg.model.hyper) != (backbone, hyper):
        raise CheckpointError(
            f"{path} is a {cfg.model.arch} (hyper {cfg.model.hyper}) classifier; this config's "
            f"encoder is {backbone} (hyper {hyper}): pre-train the same network"
        )
    encoder = method_encoder(method)
    grouped = isinstance(encoder, GroupedEncoder)
    prefix = "net." if grouped else ""
    target = encoder.state_dict()
    loaded: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key.startswith("fc.") or (_running(key) and (prefix + key) not in target):
            continue
        name = prefix + key
        if name not in target:
            raise CheckpointError(f"{path}: {key} has no place in this config's encoder")
        shape = target[name].shape
        if value.shape != shape:
            if value.shape != shape[1:]:  # per-step BatchNorm sets: one copy per step
                raise CheckpointError(
                    f"{path}: {key} is {tuple(value.shape)}, the encoder's {tuple(shape)}"
                )
            value = value.expand(shape)
        loaded[name] = value
    left = [
        k
        for k in target
        if k not in loaded and not (not grouped and k.endswith(".bias") and k.startswith("convs."))
    ]
    if left:
        raise CheckpointError(f"{path} holds no weights for {left[:3]} of this config's encoder")
    encoder.load_state_dict({**target, **loaded})
    return len(loaded)
