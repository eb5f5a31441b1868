"""The fused inference block and the one-channel training block equal the plain Conv4 blocks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.models import Conv4

pytestmark = pytest.mark.usefixtures("single_thread")


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
    from hypermaml.engine.fused_block import conv_bn_pool_relu_inference

    w = torch.randn(4, 1, 3, 3)
    with pytest.raises(RuntimeError, match="no_grad"):
        conv_bn_pool_relu_inference(torch.rand(2, 1, 8, 8), w, torch.zeros(4), torch.ones(4),
                                    torch.zeros(4), 1, 1e-5)  # fmt: skip


def test_one_channel_training_block_matches_the_plain_block_to_second_order():
    """BatchNorm folded into the first filters (fused_block.one_channel_block) is the plain
    conv -> transductive BN -> max-pool -> ReLU: values, gradients and second derivatives."""
    from hypermaml.engine.fused_block import one_channel_block

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
