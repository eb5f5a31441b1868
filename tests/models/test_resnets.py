"""The residual families, plain and hyper: shapes, which convolutions are generated."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hypermaml.models import NetworkConfig, build_network
from hypermaml.models.hyperconv import (
    HyperConv2d,
)
from tests.models.networks import randomise_batchnorm, tiny

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("family", ["wrn", "resnet18", "resnet12"])
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_shapes_for_any_image(family, channels, size):
    model = tiny(family, "layer", **({"in_channels": channels} if channels != 3 else {}))
    x = torch.randn(2, channels, size, size)
    assert model.features(x).shape == (2, model.out_dim)
    assert model(x).shape == (2, 5)


def test_which_convs_are_hyper():
    with torch.device("meta"):
        stage = build_network(NetworkConfig("resnet18", "stage"), 3, 10)
        layer = build_network(NetworkConfig("resnet18", "layer"), 3, 10)
        r12 = build_network(NetworkConfig("resnet12", "stage"), 3, 10)
    assert sorted(stage.hypernets) == ["stage1", "stage2", "stage3", "stage4"]
    for model in (stage, layer):
        assert isinstance(model.stem, nn.Conv2d)
        assert all(isinstance(st[0].shortcut[0], nn.Conv2d) for st in model.stages[1:])
        hyper = [m for m in model.modules() if isinstance(m, HyperConv2d)]
        assert all(m.kernel_size == 3 for m in hyper)
    # variant 1: every conv of stage 1, and all but the first (strided, wider) of stages 2-4
    for i, st in enumerate(stage.stages):
        first_plain = isinstance(st[0].conv1, nn.Conv2d)
        assert first_plain == (i > 0)
        hyper = [c for b in st for c in (b.conv1, b.conv2) if isinstance(c, HyperConv2d)]
        assert all(c.hypernet is stage.hypernets[f"stage{i + 1}"] and not c.owns_hypernet
                   for c in hyper)  # fmt: skip
    # variant 2: every 3x3 conv inside the stages, each with its own hypernetwork
    convs = [c for st in layer.stages for b in st for c in (b.conv1, b.conv2)]
    assert all(isinstance(c, HyperConv2d) and c.owns_hypernet for c in convs)
    assert len(layer.hypernets) == 0
    assert r12.out_dim == 640 and isinstance(r12.stages[0].conv1, nn.Conv2d)


def test_frozen_embeddings_regenerate_exactly_from_the_seed():
    torch.manual_seed(0)
    a = tiny("wrn", "stage", frozen_seed=11)
    randomise_batchnorm(a)
    assert not any("embedding" in k for k in a.state_dict())
    assert not any("embedding" in n for n, _ in a.named_parameters())
    torch.manual_seed(1)  # other global RNG: the embeddings must not depend on it
    b, c = tiny("wrn", "stage", frozen_seed=11), tiny("wrn", "stage", frozen_seed=12)
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    b.eval(), c.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
        assert not torch.allclose(a(x), c(x), atol=1e-3)
    layers = [m for m in a.modules() if isinstance(m, HyperConv2d)]
    assert [m.layer_index for m in layers] == list(range(len(layers)))
    first, again = (HyperConv2d(4, 4, frozen_seed=11, layer_index=0) for _ in range(2))
    other = HyperConv2d(4, 4, frozen_seed=11, layer_index=1)
    assert torch.equal(first.embedding, again.embedding)
    assert not torch.equal(first.embedding, other.embedding)


@pytest.mark.parametrize("hyper,seed", [("stage", None), ("stage", 4), ("layer", None)])
def test_safetensors_round_trip(tmp_path, hyper, seed):
    torch.manual_seed(0)
    model = tiny("resnet18", hyper, frozen_seed=seed)
    randomise_batchnorm(model)
    save_file(model.state_dict(), tmp_path / "model.safetensors")
    torch.manual_seed(1)
    again = tiny("resnet18", hyper, frozen_seed=seed)
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    again.eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
