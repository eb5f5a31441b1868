"""models/build.py: every network and encoder from its config section."""

from __future__ import annotations

import pytest
import torch

from hypermaml.models import ModelConfig, NetworkConfig, build_encoder, build_network
from hypermaml.models.resnets import WideResNet

pytestmark = pytest.mark.usefixtures("single_thread")


def test_build_network_refuses_bad_names():
    with pytest.raises(ValueError, match="resnet18.*wrn_"):
        build_network(NetworkConfig("resnet50"), 3, 10)
    with pytest.raises(ValueError, match="6n \\+ 4"):
        build_network(NetworkConfig("wrn_27_4"), 3, 10)
    with pytest.raises(ValueError, match="stage"):
        build_network(NetworkConfig("resnet18", "all"), 3, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hyper='stage'"):
        build_network(NetworkConfig("resnet18", frozen_seed=1), 3, 10)
    assert isinstance(build_network(NetworkConfig("WRN-10-1"), 3, 10), WideResNet)


@pytest.mark.parametrize(
    ("name", "channels", "size", "dim"),
    [("conv4", 1, 28, 64), ("conv4", 3, 84, 1600), ("conv4pool", 3, 84, 64),
     ("conv4pool", 1, 28, 64)],
)  # fmt: skip
def test_conv4_output_shapes(name, channels, size, dim):
    torch.manual_seed(0)
    model = build_encoder(ModelConfig(name, "transductive"), (channels, size, size))
    assert model.out_dim == dim
    out = model(torch.rand(2, 3, channels, size, size))
    assert out.shape == (2, 3, dim)


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="resnet"):
        build_encoder(ModelConfig("resnet"), (1, 28, 28))  # type: ignore[arg-type]
