"""Export a trained HyperResNet to the plain ResNet of the same shape, and count parameters.

``to_plain`` writes every generated weight into an ordinary convolution and copies every other
parameter and buffer (BatchNorm statistics included), so the plain network computes the same
function: in eval mode their outputs agree to float rounding (tests/models/test_export.py checks
1e-5). The embeddings and hypernetworks are then no longer needed: test-time parameters are the
plain ones.
"""

from __future__ import annotations

import torch
from torch import nn

from .build import build_network
from .config import NetworkConfig
from .hyperconv import HyperConv2d
from .resnets import ResidualNetwork


def plain_twin(model: ResidualNetwork) -> ResidualNetwork:
    """A freshly initialised plain network (``hyper="none"``) of ``model``'s architecture, on the
    device of ``model``'s parameters (meta included, to count without allocating)."""
    build_args = getattr(model, "build_args", None)
    if build_args is None:
        raise TypeError(
            f"{type(model).__name__} records no build_args: build the network with"
            " models.build.build_network or one of the resnets.py constructors"
        )
    args = {**build_args, "hyper": "none", "hyper_bias": False, "frozen_seed": None}
    device = next(model.parameters()).device
    with torch.device(device):
        return type(model)(**args)


@torch.no_grad()
def to_plain(model: ResidualNetwork) -> ResidualNetwork:
    """The plain network computing what ``model`` computes (same dtype, device and train/eval
    mode); every ``HyperConv2d`` becomes an ``nn.Conv2d`` holding its generated weight."""
    first = next(model.parameters())
    plain = plain_twin(model).to(first.dtype)
    source = dict(model.state_dict())
    for name, module in model.named_modules():
        if isinstance(module, HyperConv2d):
            source[f"{name}.weight"] = module.weight
    target = plain.state_dict()
    missing = sorted(set(target) - set(source))
    if missing:
        raise KeyError(f"the hyper model has no tensor for {missing[:5]} of its plain twin")
    for key, tensor in target.items():
        if source[key].shape != tensor.shape:
            raise ValueError(f"{key}: {tuple(source[key].shape)} != plain {tuple(tensor.shape)}")
    plain.load_state_dict({key: source[key] for key in target})
    return plain.train(model.training)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters of ``model`` as trained, parameters of its exported plain network).

    A shared hypernetwork counts once (it is registered once); frozen seeded embeddings are
    buffers and do not count. Works on models built under ``torch.device("meta")``."""
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if not any(isinstance(m, HyperConv2d) for m in model.modules()):
        return train, sum(p.numel() for p in model.parameters())
    if not isinstance(model, ResidualNetwork):
        raise TypeError(f"cannot export a {type(model).__name__}: only resnets.py networks")
    return train, sum(p.numel() for p in plain_twin(model).parameters())


def parameter_table(
    archs: list[str],
    hypers: list[str],
    num_classes: int = 10,
    in_channels: int = 3,
    compressed: bool = False,
) -> list[tuple[str, int, int]]:
    """(name, trained parameters, parameters after export) of every network of ``archs`` x
    ``hypers`` (``compressed``: also variant 1 with frozen embeddings), counted on the meta
    device without allocating (``hypermaml params``, the HyperResNets paper's tables)."""
    rows = []
    for arch in archs:
        for hyper in hypers:
            for seed in [None, 0] if compressed and hyper == "stage" else [None]:
                with torch.device("meta"):
                    cfg = NetworkConfig(arch, hyper, frozen_seed=seed)  # type: ignore[arg-type]
                    net = build_network(cfg, in_channels, num_classes)
                name = f"{arch} ({hyper}{', compressed' if seed is not None else ''})"
                rows.append((name, *count_parameters(net)))
    return rows
