"""Conv4 shapes and the BatchNorm policies."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.models import Conv4, GroupBatchNorm2d, build_backbone

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    ("name", "channels", "size", "dim"),
    [("conv4", 1, 28, 64), ("conv4", 3, 84, 1600), ("conv4pool", 3, 84, 64),
     ("conv4pool", 1, 28, 64)],
)  # fmt: skip
def test_conv4_output_shapes(name, channels, size, dim):
    torch.manual_seed(0)
    model = build_backbone(name, channels, size, "transductive")
    assert model.out_dim == dim
    out = model(torch.rand(2, 3, channels, size, size))
    assert out.shape == (2, 3, dim)


def test_conv4_has_four_blocks_of_64_channels():
    model = Conv4(1, 28)
    assert len(model.convs) == len(model.norms) == 4
    assert all(c.out_channels == 64 and c.kernel_size == (3, 3) and c.padding == (1, 1)
               for c in model.convs)  # fmt: skip
    assert all(isinstance(n, GroupBatchNorm2d) for n in model.norms)


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="resnet"):
        build_backbone("resnet", 1, 28, "transductive")


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


@pytest.mark.parametrize(
    ("channels", "size", "groups", "n", "pool"),
    [(1, 28, 3, 5, False), (1, 28, 2, 37, False), (3, 20, 2, 4, True), (3, 84, 1, 3, False)],
)  # fmt: skip
def test_inference_blocks_match_autograd_blocks(channels, size, groups, n, pool):
    """The cache-friendly no-grad path (fused_block) computes the autograd path's function,
    including channels whose BatchNorm weight is negative (max-pool then flips to min-pool),
    odd spatial sizes and groups spanning several chunks."""
    torch.manual_seed(0)
    model = Conv4(channels, size, bn="transductive", pool=pool)
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.copy_(torch.randn_like(norm.weight))  # about half negative
            norm.bias.copy_(torch.randn_like(norm.bias))
    assert any((norm.weight < 0).any() for norm in model.norms)
    x = torch.rand(groups, n, channels, size, size)
    reference = model(x)  # autograd enabled: the plain conv -> BN -> pool -> ReLU blocks
    with torch.no_grad():
        fast = model(x)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4)


def test_inference_block_refuses_autograd():
    from hypermaml.models.fused_block import conv_bn_pool_relu_inference

    w = torch.randn(4, 1, 3, 3)
    with pytest.raises(RuntimeError, match="no_grad"):
        conv_bn_pool_relu_inference(torch.rand(2, 1, 8, 8), w, torch.zeros(4), torch.ones(4),
                                    torch.zeros(4), 1, 1e-5)  # fmt: skip


def test_one_channel_training_block_matches_the_plain_block_to_second_order():
    """BatchNorm folded into the first filters (fused_block.one_channel_block) is the plain
    conv -> transductive BN -> max-pool -> ReLU: values, gradients and second derivatives."""
    from hypermaml.models.fused_block import one_channel_block

    g = torch.Generator().manual_seed(0)
    groups, n, size, channels = 3, 4, 10, 6
    x = torch.rand(groups * n, 1, size, size, generator=g, dtype=torch.double)
    params = [torch.randn(channels, 1, 3, 3, generator=g, dtype=torch.double),
              torch.randn(channels, generator=g, dtype=torch.double),
              torch.randn(channels, generator=g, dtype=torch.double),  # some weights negative
              torch.randn(channels, generator=g, dtype=torch.double)]  # fmt: skip
    params = [p.requires_grad_() for p in params]

    def plain(cw, cb, bw, bb):  # noqa: ANN001, ANN202
        y = F.conv2d(x, cw, cb, padding=1)
        y = torch.cat([F.batch_norm(part, None, None, bw, bb, True, 0.0, 1e-5)
                       for part in y.split(n)])  # fmt: skip
        return F.relu(F.max_pool2d(y, 2))

    def fused(cw, cb, bw, bb):  # noqa: ANN001, ANN202
        return one_channel_block(x, cw, cb, bw, bb, groups, 1e-5)

    probe = torch.randn(groups * n, channels, size // 2, size // 2, generator=g, dtype=torch.double)
    results = []
    for block in (plain, fused):
        out = block(*params)
        first = torch.autograd.grad((out * probe).sum(), params, create_graph=True)
        second = torch.autograd.grad(sum(f.square().sum() for f in first), params,
                                     allow_unused=True)  # fmt: skip
        results.append((out, first, second))
    (out_p, first_p, second_p), (out_f, first_f, second_f) = results
    torch.testing.assert_close(out_f, out_p)
    for a, e in zip(first_f + second_f, first_p + second_p):
        if e is None or a is None:  # the conv bias: no effect through batch-statistics BN
            assert (a if e is None else e).abs().max() < 1e-8
            continue
        torch.testing.assert_close(a, e)
