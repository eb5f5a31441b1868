"""Conv4 shapes and the BatchNorm policies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.models import Conv4, GroupBatchNorm2d

pytestmark = pytest.mark.usefixtures("single_thread")


def test_conv4_has_four_blocks_of_64_channels():
    model = Conv4(1, 28)
    assert len(model.convs) == len(model.norms) == 4
    assert all(c.out_channels == 64 and c.kernel_size == (3, 3) and c.padding == (1, 1)
               for c in model.convs)  # fmt: skip
    assert all(isinstance(n, GroupBatchNorm2d) for n in model.norms)


@pytest.mark.parametrize("training", [True, False])
def test_transductive_groups_are_normalised_as_if_alone(training):
    torch.manual_seed(0)
    model = Conv4(1, 16, width=8, bn="transductive").train(training)
    x = torch.rand(4, 5, 1, 16, 16)
    together = model(x)
    for g in range(4):
        alone = model(x[g : g + 1])
        torch.testing.assert_close(together[g], alone[0], rtol=1e-5, atol=1e-5)


def test_transductive_group_output_ignores_other_groups_but_not_its_own():
    torch.manual_seed(0)
    model = Conv4(1, 16, width=8, bn="transductive")
    x = torch.rand(3, 4, 1, 16, 16)
    base = model(x)
    other = x.clone()
    other[1:] = torch.rand(2, 4, 1, 16, 16) * 5  # other groups: different content and scale
    torch.testing.assert_close(model(other)[0], base[0], rtol=1e-5, atol=1e-5)
    same_group = x.clone()
    same_group[0, 3] = torch.rand(1, 16, 16) * 5  # a neighbour in the same group
    assert not torch.allclose(model(same_group)[0, 0], base[0, 0], atol=1e-4)


def test_transductive_batchnorm_keeps_no_running_statistics():
    model = Conv4(1, 16, width=8, bn="transductive")
    assert all(getattr(n, "running_mean", None) is None for n in model.norms)
    assert not any("running" in key for key in model.state_dict())
    x = torch.rand(2, 4, 1, 16, 16)
    train_out = model.train()(x)
    torch.testing.assert_close(model.eval()(x), train_out)  # batch statistics in eval too


def test_group_batchnorm_matches_per_group_batch_norm():
    torch.manual_seed(0)
    norm = GroupBatchNorm2d(3, "transductive")
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        norm.bias.copy_(torch.tensor([0.1, 0.0, 0.3]))
    x = torch.randn(4 * 6, 3, 5, 5)
    out = norm(x, groups=4)
    for g in range(4):
        part = x[6 * g : 6 * (g + 1)]
        expected = F.batch_norm(part, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        torch.testing.assert_close(out[6 * g : 6 * (g + 1)], expected, rtol=1e-5, atol=1e-5)


def test_eval_policy_uses_running_statistics_in_eval_mode():
    torch.manual_seed(0)
    model = Conv4(1, 16, width=8, bn="eval")
    assert all(n.running_mean is not None for n in model.norms)
    model.train()
    for _ in range(3):  # training forwards update the running statistics
        model(torch.rand(2, 6, 1, 16, 16) * 2)
    assert not torch.allclose(model.norms[0].running_mean, torch.zeros(8))
    model.eval()
    x = torch.rand(2, 6, 1, 16, 16)
    batched = model(x)
    # per image: the output no longer depends on the rest of the batch
    torch.testing.assert_close(model(x[:1, :1])[0, 0], batched[0, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model(x[1:, 2:3])[0, 0], batched[1, 2], rtol=1e-5, atol=1e-5)
    # ... whereas in training mode it does (batch statistics)
    model.train()
    assert not torch.allclose(model(x[:1, :1])[0, 0], model(x)[0, 0], atol=1e-4)


def test_eval_policy_norm_is_the_running_statistics_formula():
    norm = GroupBatchNorm2d(2, "eval").eval()
    with torch.no_grad():
        norm.running_mean.copy_(torch.tensor([0.5, -1.0]))
        norm.running_var.copy_(torch.tensor([4.0, 0.25]))
        norm.weight.copy_(torch.tensor([2.0, 1.0]))
        norm.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.randn(6, 2, 3, 3)
    mean = torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    var = torch.tensor([4.0, 0.25]).view(1, 2, 1, 1)
    expected = (x - mean) / torch.sqrt(var + norm.eps) * torch.tensor([2.0, 1.0]).view(
        1, 2, 1, 1
    ) + torch.tensor([0.0, 1.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(norm(x, groups=3), expected)
    torch.testing.assert_close(norm(x), expected)
