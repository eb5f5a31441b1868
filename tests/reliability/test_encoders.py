"""Encoders for natural images under every configuration a user may write: each backbone x hyper
mode x BatchNorm policy builds or is refused with one line naming the key and the fix; weights
survive a save and reload bit for bit; a pre-trained classifier of the same name loads into the
encoder; batched tasks compute what each task computes alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hypermaml.cli import main
from hypermaml.config import HyperMAMLConfig, MAMLConfig, load_config
from hypermaml.data import TaskBatch
from hypermaml.errors import ConfigError
from hypermaml.methods import MAML, HyperMAML, ProtoNet, build_method
from hypermaml.models import ModelConfig, NetworkConfig, build_encoder, build_network
from hypermaml.models.backbones import FIXED
from tests.methods.test_backbones import task_batch
from tests.models.networks import narrow_encoder
from tests.models.test_backbones import FEATURES_AT_84

pytestmark = pytest.mark.usefixtures("single_thread")
NAMES = [name for name in FIXED if name != "resnet34"] + ["wrn_16_4"]  # resnet18's family
HYPERS = ("none", "stage", "layer")
POLICIES = ("transductive", "eval", "per_step")
METHODS = ("maml", "hypermaml", "protonet")
N_WAY = 2


@pytest.mark.parametrize("name", NAMES)
def test_every_hyper_mode_and_policy_of_a_backbone_builds_a_method(name):
    """On the meta device (shapes and names only, nothing allocated); each method in turn."""
    combos = [(hyper, bn) for hyper in HYPERS for bn in POLICIES]
    for i, (hyper, bn) in enumerate(combos):
        method = METHODS[i % len(METHODS)]
        overrides = [f"method.name={method}", f"model.backbone={name}", f"model.hyper={hyper}",
                     f"model.bn={bn}"]  # fmt: skip
        cfg = load_config(None, overrides)
        with torch.device("meta"):
            built = build_method(cfg, (3, 84, 84))
            out = built.encoder(torch.empty(2, 3, 3, 84, 84), 1)
        assert out.shape == (2, 3, built.encoder.out_dim), (hyper, bn)
        assert built.encoder.out_dim == FEATURES_AT_84[name]


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("model.backbone=resnet50", "model.backbone='resnet50': unknown network 'resnet50'; choose"
      " one of conv4, conv4pool, resnet10, resnet12, resnet12_dropblock, resnet18, resnet34, wrn_"),
     ("model.backbone=wrn_27_4", "model.backbone='wrn_27_4': WRN-27-4 does not exist: depth must"
      " be 6n + 4"),
     ("model.bn=running", "model.bn: 'running' is not one of ['transductive', 'eval', 'per_step']"),
     ("model.hyper=all", "model.hyper: 'all' is not one of ['none', 'stage', 'layer']")],
)  # fmt: skip
def test_a_bad_model_section_is_one_line_before_any_work(override, fragment, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "omniglot_5w1s_protonet", "--out", str(out), "--quiet", "--set", override]
    code = main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and fragment in lines[0]
    assert not out.exists()


def test_images_a_backbone_cannot_encode_are_a_config_error():
    cfg = load_config(None, ["model.backbone=resnet12", "model.hyper=stage"])
    with pytest.raises(ConfigError, match="model.backbone='resnet12'.*3x12x12 are too small"):
        build_method(cfg, (3, 12, 12))
    with pytest.raises(ConfigError, match="model.backbone='conv4pool'.*too small for Conv4"):
        build_encoder(ModelConfig("conv4pool"), (3, 8, 8))


@pytest.mark.parametrize(
    ("backbone", "hyper", "bn"),
    [("resnet10", "stage", "per_step"), ("resnet12_dropblock", "layer", "transductive"),
     ("resnet18", "stage", "eval"), ("wrn", "layer", "per_step"), ("conv4pool", "stage", "eval")],
)  # fmt: skip
def test_a_method_reloads_bit_for_bit_from_safetensors(tmp_path: Path, backbone, hyper, bn):
    """Shared hypernetworks, per-step sets and running statistics all travel in the file."""

    def make(seed: int) -> MAML:
        torch.manual_seed(seed)
        encoder = narrow_encoder(backbone, hyper, bn=bn, bn_steps=2, size=32)
        return MAML(encoder, N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.1))

    method = make(0)
    batch = task_batch((3, 32, 32))
    batch = TaskBatch(batch.support_x.float(), batch.support_y, batch.query_x.float(),
                      batch.query_y, N_WAY, 2)  # fmt: skip
    method.train().meta_loss(batch)  # moves running statistics where there are any
    save_file(method.state_dict(), tmp_path / "model.safetensors")
    again = make(1)
    again.load_state_dict(load_file(tmp_path / "model.safetensors"))
    method.eval(), again.eval()
    assert torch.equal(method(batch), again(batch))


@pytest.mark.parametrize("hyper", HYPERS)
@pytest.mark.parametrize("bn", ["transductive", "per_step"])
def test_a_classifier_of_the_same_name_loads_into_every_encoder(hyper, bn):
    """What ``training.pretrained`` does: a classifier (``hypermaml classify``) of the backbone's
    name gives the encoder every weight (meta device: names and shapes)."""
    for name in NAMES:
        with torch.device("meta"):
            classifier = build_network(NetworkConfig(name, hyper), 3, 64, 84)
            encoder = build_encoder(ModelConfig(name, bn, hyper), (3, 84, 84), bn_steps=3)
        state = classifier.state_dict()
        copied = encoder.load_network(state)
        expected = [k for k in state if not k.startswith("fc.") and "num_batches" not in k]
        if bn == "transductive":  # no running statistics to copy
            expected = [k for k in expected if "running" not in k]
        assert copied == len(expected), name


@pytest.mark.parametrize("method", ["maml", "hypermaml", "protonet"])
def test_tasks_batched_compute_what_each_computes_alone(method):
    """Transductive BatchNorm on a HyperResNet: a task's logits do not depend on the other
    tasks of its batch."""
    torch.manual_seed(0)
    encoder = narrow_encoder("resnet12", "stage", size=32)
    models = {
        "maml": lambda: MAML(encoder, N_WAY, MAMLConfig(inner_steps=2, inner_lr=0.1)),
        "hypermaml": lambda: HyperMAML(encoder, N_WAY, HyperMAMLConfig(hn_width=8)),
        "protonet": lambda: ProtoNet(encoder, N_WAY),
    }
    model = models[method]().double().train()
    batch = task_batch((3, 32, 32), n_tasks=3)
    together = model(batch)
    for b in range(3):
        tensors = (batch.support_x, batch.support_y, batch.query_x, batch.query_y)
        alone = TaskBatch(*(t[b : b + 1] for t in tensors), N_WAY, 2)
        torch.testing.assert_close(together[b], model(alone)[0])
