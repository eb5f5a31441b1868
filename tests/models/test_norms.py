"""The BatchNorm policies of every GroupedEncoder backbone: transductive (each group alone, no
running statistics), eval (running statistics at test) and per_step (a set per inner step)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hypermaml.models import GroupedEncoder
from hypermaml.models.norms import BatchStatsNorm2d, StepBatchNorm2d
from hypermaml.models.resnets import ResNet12
from tests.models.networks import BACKBONES, narrow_encoder

pytestmark = pytest.mark.usefixtures("single_thread")
GROUPED = [b for b in BACKBONES if b != "resnet12_dropblock"]  # random in training


@pytest.mark.parametrize("backbone", GROUPED)
def test_transductive_groups_are_normalised_as_if_alone(backbone):
    torch.manual_seed(0)
    encoder = narrow_encoder(backbone, "stage", size=32).double()
    x = torch.rand(3, 4, 3, 32, 32, dtype=torch.float64)
    for training in (True, False):
        encoder.train(training)
        together = encoder(x)
        for g in range(3):
            torch.testing.assert_close(together[g], encoder(x[g : g + 1])[0])
    assert not any("running" in n for n, _ in encoder.named_buffers())


def test_transductive_keeps_the_networks_names_and_shapes():
    """A checkpoint written before the policy layers existed loads unchanged."""
    torch.manual_seed(0)
    net = ResNet12(widths=(4, 6), hyper="stage")
    expected = {k: v.shape for k, v in net.state_dict().items() if "running" not in k
                and "num_batches" not in k}  # fmt: skip
    encoder = GroupedEncoder(net)
    got = {k.removeprefix("net."): v.shape for k, v in encoder.state_dict().items()}
    assert got == expected
    assert not any(isinstance(m, nn.BatchNorm2d) for m in encoder.modules())
    assert any(isinstance(m, BatchStatsNorm2d) for m in encoder.modules())


def test_eval_policy_normalises_with_running_statistics_at_test():
    torch.manual_seed(0)
    encoder = narrow_encoder("resnet12", bn="eval", size=32).double()
    x = torch.rand(2, 4, 3, 32, 32, dtype=torch.float64)
    before = encoder.net.stages[0].bn1.running_mean.clone()
    encoder.train()(x)
    assert not torch.equal(encoder.net.stages[0].bn1.running_mean, before)
    encoder.eval()
    alone = encoder(x[1:])[0]
    torch.testing.assert_close(encoder(x)[1], alone)
    torch.testing.assert_close(encoder(x[1:, :1])[0, 0], alone[0])  # one image as well


def test_per_step_policy_keeps_a_set_per_step_and_the_step_picks_it():
    torch.manual_seed(0)
    encoder = narrow_encoder("resnet10", "stage", bn="per_step", bn_steps=3, size=32).double()
    norms = [m for m in encoder.modules() if isinstance(m, StepBatchNorm2d)]
    assert norms and all(m.weight.shape[0] == 3 for m in norms)
    x = torch.rand(1, 4, 3, 32, 32, dtype=torch.float64)
    encoder.train()
    outs = [encoder(x, step) for step in range(4)]
    torch.testing.assert_close(outs[1], outs[0])  # sets start equal
    with torch.no_grad():
        encoder.net.bn.bias[1] += 0.5
    running = [m.running_mean.clone() for m in norms]
    changed = encoder(x, 1)
    assert not torch.allclose(changed, outs[1])
    torch.testing.assert_close(encoder(x, 0), outs[0])
    torch.testing.assert_close(encoder(x, 7), encoder(x, 2))  # beyond the sets: the last one
    moved = [(m.running_mean != r).any(dim=1) for m, r in zip(norms, running)]
    assert all(m[1] for m in moved)  # step 1 updated its own running statistics ...
    encoder.eval()  # ... and in eval mode each step normalises with its own
    assert not torch.allclose(encoder(x, 0), encoder(x, 1))


def test_per_step_sets_start_from_a_pretrained_classifiers_batchnorm():
    torch.manual_seed(0)
    classifier = ResNet12(widths=(4, 6), num_classes=5, hyper="layer")
    for m in classifier.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight)
            nn.init.uniform_(m.running_var, 0.5, 2.0)
    encoder = GroupedEncoder(ResNet12(widths=(4, 6), hyper="layer"), "per_step", bn_steps=2)
    assert encoder.load_network(classifier.state_dict()) > 0
    bn, norm = classifier.stages[1].bn2, encoder.net.stages[1].bn2
    for name in ("weight", "bias", "running_var"):
        torch.testing.assert_close(getattr(norm, name), getattr(bn, name).expand(2, -1))
    x = torch.rand(1, 3, 3, 16, 16)
    classifier.eval(), encoder.eval()
    torch.testing.assert_close(encoder(x, 1)[0], classifier.features(x[0]))
