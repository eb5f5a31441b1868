"""The backbones a few-shot config names (``model.backbone``): each encodes 3x84x84 images into
its documented embedding, plain or hyper, and a bad name or image size is a ConfigError."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hypermaml.config import load_config
from hypermaml.errors import ConfigError
from hypermaml.models import ModelConfig, NetworkConfig, build_encoder, build_network
from hypermaml.models.backbones import FIXED
from hypermaml.models.dropblock import DropBlock
from hypermaml.models.export import to_plain
from hypermaml.models.hyperconv import HyperConv2d
from hypermaml.models.resnet10 import ResNet10
from hypermaml.models.resnets import ResNet12
from tests.models.networks import narrow_encoder, randomise_batchnorm

pytestmark = pytest.mark.usefixtures("single_thread")

FEATURES_AT_84 = {
    "conv4": 1600, "conv4pool": 64, "resnet10": 512, "resnet12": 640, "resnet12_dropblock": 640,
    "resnet18": 512, "resnet34": 512, "wrn_16_4": 256, "wrn_28_10": 640,
}  # fmt: skip


def test_every_fixed_name_has_a_documented_size():
    assert set(FIXED) <= set(FEATURES_AT_84)


@pytest.mark.parametrize("hyper", ["none", "stage", "layer"])
@pytest.mark.parametrize("backbone", sorted(FEATURES_AT_84))
def test_feature_size_of_every_backbone_at_84_px(backbone, hyper):
    """Shapes only: built and run on the meta device, nothing is allocated or computed."""
    with torch.device("meta"):
        encoder = build_encoder(ModelConfig(backbone, "transductive", hyper), (3, 84, 84))
        out = encoder(torch.empty(2, 5, 3, 84, 84))
    assert encoder.out_dim == FEATURES_AT_84[backbone]
    assert out.shape == (2, 5, FEATURES_AT_84[backbone])


@pytest.mark.parametrize("backbone", ["conv4", "conv4pool", "resnet10", "resnet12", "wrn_10_1"])
def test_real_84_px_images_give_finite_features(backbone):
    torch.manual_seed(0)
    encoder = build_encoder(ModelConfig(backbone), (3, 84, 84))
    out = encoder(torch.rand(2, 3, 3, 84, 84))
    assert out.shape == (2, 3, encoder.out_dim) and torch.isfinite(out).all()


def test_resnet10_is_closerlooks_layout():
    with torch.device("meta"):
        plain = ResNet10()
        stage = ResNet10(hyper="stage")
    assert (plain.stem.kernel_size, plain.stem.stride) == ((7, 7), (2, 2))
    assert [len(s) for s in plain.stages] == [1, 1, 1, 1]
    assert [s[0].conv1.out_channels for s in plain.stages] == [64, 128, 256, 512]
    assert isinstance(plain.stages[0][0].shortcut, nn.Identity)
    assert all(isinstance(s[0].shortcut[0], nn.Conv2d) for s in plain.stages[1:])
    # variant 1: the stem, the strided first convs of stages 2-4 and the shortcuts stay plain
    assert isinstance(stage.stem, nn.Conv2d)
    hyper = [(i, n) for i, s in enumerate(stage.stages) for n in ("conv1", "conv2")
             if isinstance(getattr(s[0], n), HyperConv2d)]  # fmt: skip
    assert hyper == [(0, "conv1"), (0, "conv2"), (1, "conv2"), (2, "conv2"), (3, "conv2")]
    assert sorted(stage.hypernets) == ["stage1", "stage2", "stage3", "stage4"]


def test_resnet12_dropblock_acts_in_training_only():
    torch.manual_seed(0)
    plain = ResNet12(widths=(4, 6, 8, 8))
    dropped = ResNet12(widths=(4, 6, 8, 8), drop_rate=0.1, drop_block_size=5)
    dropped.load_state_dict(plain.state_dict())  # DropBlock holds no tensors
    drops = [b.drop for b in dropped.stages]
    assert [d.block_size for d in drops] == [1, 1, 5, 5] and all(d.rate == 0.1 for d in drops)
    assert all(b.drop is None for b in plain.stages)
    x = torch.rand(4, 3, 32, 32)
    plain.eval(), dropped.eval()
    torch.testing.assert_close(dropped(x), plain(x))
    dropped.train(), plain.train()
    assert not torch.allclose(dropped(x), plain(x))
    net = build_network(NetworkConfig("resnet12_dropblock"), 3, 0)
    assert net.stages[3].drop.block_size == 5 and net.stages[3].drop.rate == 0.1


def test_dropblock_drops_square_blocks_at_the_rate_and_keeps_the_mean():
    torch.manual_seed(0)
    layer = DropBlock(0.2, 3).train()
    x = torch.ones(64, 8, 12, 12)
    out = layer(x)
    zero = out == 0
    assert abs(zero.float().mean().item() - 0.2) < 0.05
    assert out.mean().item() == pytest.approx(1.0, rel=1e-5)
    # every dropped position lies in a dropped 3x3 block inside the map
    corners = F.avg_pool2d(zero.float(), 3, stride=1) == 1  # [.., 10, 10]: all-zero blocks
    covered = F.max_pool2d(F.pad(corners.float(), [2] * 4), 3, stride=1) > 0
    assert torch.equal(covered, zero)
    assert torch.equal(layer.eval()(x), x)


def test_backbone_names_are_checked_when_the_config_is_read():
    assert load_config(None, ["model.backbone=WRN-16-4"]).model.backbone == "WRN-16-4"
    with pytest.raises(ConfigError, match="model.backbone='resnet50'.*resnet10.*wrn_"):
        load_config(None, ["model.backbone=resnet50"])
    with pytest.raises(ConfigError, match="model.backbone='wrn_27_4'.*6n \\+ 4"):
        ModelConfig("wrn_27_4")


@pytest.mark.parametrize(
    ("backbone", "hyper", "size"),
    [("conv4", "none", 8), ("conv4pool", "stage", 12), ("resnet12", "none", 8),
     ("resnet12", "layer", 15)],
)  # fmt: skip
def test_images_too_small_for_a_backbone_are_a_config_error(backbone, hyper, size):
    with pytest.raises(ConfigError, match=f"model.backbone='{backbone}'.*too small"):
        build_encoder(ModelConfig(backbone, hyper=hyper), (3, size, size))
    assert build_encoder(ModelConfig("resnet10", hyper=hyper), (3, size, size)).out_dim == 512


@pytest.mark.parametrize("backbone", ["conv4pool", "resnet10", "resnet12_dropblock"])
@pytest.mark.parametrize("hyper", ["stage", "layer"])
def test_new_hyper_networks_export_to_their_plain_twin(backbone, hyper):
    torch.manual_seed(0)
    net = narrow_encoder(backbone, hyper, bn="eval").net
    randomise_batchnorm(net)
    plain = to_plain(net)
    assert type(plain) is type(net) and not any(isinstance(m, HyperConv2d) for m in plain.modules())
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(plain.features(x), net.features(x), rtol=0, atol=1e-5)
