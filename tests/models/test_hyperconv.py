"""Hyper-convolutions: generated weights, initialisation, gradients, penalty, sharing."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hypermaml.models import NetworkConfig, build_network
from hypermaml.models.hyperconv import (
    HyperConv2d,
    HyperNetwork,
    generated_weight_penalty,
    hyper_layers,
    parameter_groups,
)
from tests.models.networks import tiny

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("k", [1, 3, 5])
def test_generated_weight_is_the_hand_computed_convolution(k):
    torch.manual_seed(0)
    c_out, c_in, d, h = 2, 3, 2, k // 2
    layer = HyperConv2d(c_in, c_out, k, embed_dim=d)
    E, H = layer.embedding.detach(), layer.hypernet.weight.detach()
    expected = torch.zeros(c_out, c_in, k, k)
    for o in range(c_out):
        for i in range(c_in):
            for p in range(k):
                for q in range(k):
                    for c in range(d):
                        for a in range(k):
                            for b in range(k):
                                u, v = p + a - h, q + b - h
                                if 0 <= u < k and 0 <= v < k:
                                    expected[o, i, p, q] += E[o, c, u, v] * H[i, c, a, b]
    assert layer.weight.shape == (c_out, c_in, k, k)
    torch.testing.assert_close(layer.weight.detach(), expected, rtol=1e-5, atol=1e-6)
    x = torch.randn(2, c_in, 7, 7)
    torch.testing.assert_close(layer(x), F.conv2d(x, expected, padding=h), rtol=1e-4, atol=1e-5)


def test_hypernetwork_is_bias_free_by_default():
    assert HyperNetwork(4, 4, 3).bias is None
    assert [n for n, _ in HyperConv2d(4, 4).named_parameters()] == ["embedding", "hypernet.weight"]
    for hyper in ("stage", "layer"):
        keys = tiny("wrn", hyper).state_dict().keys()
        assert not [k for k in keys if "hypernet" in k and k.endswith("bias")]
        with_bias = tiny("wrn", hyper, hyper_bias=True).state_dict().keys()
        assert [k for k in with_bias if "hypernet" in k and k.endswith("bias")]
    layer = HyperConv2d(3, 2, bias=True)
    with torch.no_grad():
        layer.hypernet.bias.copy_(torch.tensor([1.0, 2.0, 3.0]))
    no_bias = F.conv2d(layer.embedding, layer.hypernet.weight, padding=1)
    bias = torch.tensor([1.0, 2.0, 3.0]).view(1, 3, 1, 1).expand(2, 3, 3, 3)  # one per C_in
    torch.testing.assert_close(layer.weight - no_bias, bias)


def test_generated_weights_start_with_he_variance_own_and_shared():
    torch.manual_seed(0)
    c, k = 128, 3
    he = 2.0 / (c * k * k)
    own = HyperConv2d(c, c, k)
    shared = HyperNetwork(c, c, k)
    layers = [HyperConv2d(c, c_out, k, hypernet=shared) for c_out in (128, 256)]
    frozen = HyperConv2d(c, c, k, frozen_seed=3)
    for layer in (own, *layers, frozen):
        ratio = layer.weight.detach().var().item() / he
        assert abs(ratio - 1) < 0.04, ratio
    # the zero padding makes centre taps larger than corner ones: n_p n_q k^2 / s^2, s = 7
    per_position = own.weight.detach().var(dim=(0, 1)) / he
    taps = torch.tensor([2.0, 3.0, 2.0])
    torch.testing.assert_close(per_position, torch.outer(taps, taps) * 9 / 49, rtol=0.08, atol=0)


def test_gradients_reach_embeddings_and_hypernetworks():
    torch.manual_seed(0)
    for hyper in ("stage", "layer"):
        model = tiny("wrn", hyper)
        F.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.arange(4)).backward()
        groups = parameter_groups(model)
        assert groups.hyper and groups.plain
        for p in (*groups.hyper, *groups.plain):
            assert p.grad is not None and p.grad.abs().sum() > 0


def test_shared_hypernetwork_receives_the_sum_of_its_layers_gradients():
    torch.manual_seed(0)
    shared = HyperNetwork(2, 2, 3).double()
    first = HyperConv2d(2, 2, hypernet=shared).double()
    second = HyperConv2d(2, 2, hypernet=shared).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)

    def loss(h: torch.Tensor, h_first: torch.Tensor | None = None) -> torch.Tensor:
        w1 = F.conv2d(first.embedding, h if h_first is None else h_first, padding=1)
        w2 = F.conv2d(second.embedding, h, padding=1)
        return F.conv2d(torch.tanh(F.conv2d(x, w1, padding=1)), w2, padding=1).pow(2).sum()

    second(torch.tanh(first(x))).pow(2).sum().backward()
    h = shared.weight.detach()
    # the same loss with the two uses of H as separate copies: one gradient per layer
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    loss(h2, h1).backward()
    torch.testing.assert_close(shared.weight.grad, h1.grad + h2.grad)
    assert h1.grad.abs().sum() > 0 and h2.grad.abs().sum() > 0
    # and the sum is the true derivative: central finite differences
    eps, numeric = 1e-6, torch.zeros_like(h)
    for idx in range(h.numel()):
        step = torch.zeros(h.numel(), dtype=h.dtype)
        step[idx] = eps
        step = step.view_as(h)
        with torch.no_grad():
            numeric.view(-1)[idx] = (loss(h + step) - loss(h - step)) / (2 * eps)
    torch.testing.assert_close(shared.weight.grad, numeric, rtol=1e-5, atol=1e-7)


def test_penalty_on_known_weights():
    holder = nn.Module()
    holder.hypernets = nn.ModuleDict({"s": HyperNetwork(3, 2, 3)})
    holder.ones = HyperConv2d(3, 2, 1, embed_dim=4)  # k = 1, all ones: W = d everywhere
    holder.delta = HyperConv2d(3, 4, 3, hypernet=holder.hypernets["s"])
    with torch.no_grad():
        holder.ones.embedding.fill_(1.0)
        holder.ones.hypernet.weight.fill_(1.0)
        holder.delta.embedding.zero_()
        for o in range(4):  # E[o] = centre tap of channel o % 2: W[o, i] = H[i, o % 2] flipped
            holder.delta.embedding[o, o % 2, 1, 1] = 1.0
    H = holder.hypernets["s"].weight.detach()
    expected = 2 * 3 * 4**2 + sum(H[:, o % 2].pow(2).sum() for o in range(4))
    penalty = generated_weight_penalty(holder)
    torch.testing.assert_close(penalty, torch.as_tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(holder.delta.weight[1, 2], H[2, 1].flip(0, 1))
    penalty.backward()
    assert holder.hypernets["s"].weight.grad is not None
    assert generated_weight_penalty(tiny("wrn", "none")).item() == 0.0


def test_parameter_groups_split_hyper_from_plain():
    model = tiny("resnet18", "stage")
    groups = parameter_groups(model)
    hyper_ids = {id(p) for p in groups.hyper}
    named = dict(model.named_parameters())
    assert hyper_ids == {id(p) for n, p in named.items() if "embedding" in n or "hypernet" in n}
    assert len(groups.hyper) + len(groups.plain) == len(named)
    lonely = nn.Sequential(HyperConv2d(2, 2, hypernet=HyperNetwork(2, 2, 3)))
    with pytest.raises(ValueError, match="not registered"):
        parameter_groups(lonely)


# --- the networks ----------------------------------------------------------------------------


def test_sharing_survives_deepcopy_and_functional_call():
    model = tiny("wrn", "stage")
    twin = copy.deepcopy(model)
    layer = twin.stages[0][0].conv2
    assert layer.hypernet is twin.hypernets["stage1"]
    assert layer.hypernet is not model.hypernets["stage1"]
    x = torch.randn(2, 3, 16, 16)
    params = {"hypernets.stage1.weight": torch.zeros_like(model.hypernets["stage1"].weight)}
    model.eval()
    zeroed = torch.func.functional_call(model, params, (x,))
    assert torch.equal(model.stages[0][0].conv2.weight, layer.weight)  # model untouched
    with torch.no_grad():
        model.hypernets["stage1"].weight.zero_()
        torch.testing.assert_close(model(x), zeroed)


# --- parameter counts (paper's Tables 3, 4, 6; 10 classes, 3 channels) ----------------------


def test_generate_once_shares_the_weights_of_forward_and_penalty_with_equal_gradients():
    from hypermaml.models.hyperconv import generate_once

    torch.manual_seed(0)
    model = build_network(NetworkConfig("wrn_10_1", "stage"), 1, 3).double()
    x = torch.rand(4, 1, 12, 12, dtype=torch.float64)
    calls = []
    for hypernet in model.modules():
        if isinstance(hypernet, HyperNetwork):
            hypernet.register_forward_hook(lambda *_: calls.append(1))

    def step(cached: bool) -> list[torch.Tensor]:
        model.zero_grad()
        calls.clear()
        if cached:
            with generate_once(model):
                loss = model(x).square().sum() + 0.1 * generated_weight_penalty(model)
        else:
            loss = model(x).square().sum() + 0.1 * generated_weight_penalty(model)
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    plain_grads = step(cached=False)
    n_layers = len(hyper_layers(model))
    assert len(calls) == 2 * n_layers
    cached_grads = step(cached=True)
    assert len(calls) == n_layers
    for a, b in zip(plain_grads, cached_grads):
        torch.testing.assert_close(a, b)
    assert all(layer._memo is None for layer in hyper_layers(model))  # nothing kept after
