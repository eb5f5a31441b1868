"""MAML: the second-order meta-gradient against finite differences, first-order against the
FOMAML formula, head-only adaptation, no mutation of the module, test-time step count."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.config import MAMLConfig
from hypermaml.data import TaskBatch
from hypermaml.methods import MAML
from hypermaml.models import Conv4, IdentityEncoder

N_WAY = 2

pytestmark = pytest.mark.usefixtures("single_thread")


def make_batch(x_shape, n_tasks=2, n_shot=2, n_query=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    support_x = torch.rand(n_tasks, N_WAY * n_shot, *x_shape, generator=g, dtype=dtype)
    query_x = torch.rand(n_tasks, N_WAY * n_query, *x_shape, generator=g, dtype=dtype)
    # make the classes separable-ish so the losses are not flat
    labels_s = torch.arange(N_WAY).repeat_interleave(n_shot)
    labels_q = torch.arange(N_WAY).repeat_interleave(n_query)
    support_x = support_x + labels_s.to(dtype).view(1, -1, *[1] * len(x_shape))
    query_x = query_x + labels_q.to(dtype).view(1, -1, *[1] * len(x_shape))
    return TaskBatch(
        support_x,
        labels_s.expand(n_tasks, -1).contiguous(),
        query_x,
        labels_q.expand(n_tasks, -1).contiguous(),
        N_WAY,
        n_shot,
    )


def identity_maml(seed=0, **cfg) -> MAML:
    torch.manual_seed(seed)
    cfg.setdefault("inner_lr", 0.5)
    method = MAML(IdentityEncoder(3), N_WAY, MAMLConfig(**cfg)).double()
    with torch.no_grad():  # a non-zero bias so that every parameter matters
        method.head.bias.copy_(torch.tensor([0.3, -0.2]))
    return method


def conv_maml(seed=0, **cfg) -> MAML:
    torch.manual_seed(seed)
    cfg.setdefault("inner_lr", 0.1)
    return MAML(Conv4(in_channels=1, image_size=16, width=8), N_WAY, MAMLConfig(**cfg)).double()


def meta_grad(method: MAML, batch: TaskBatch, name: str) -> torch.Tensor:
    method.train()
    method.zero_grad()
    loss, _ = method.meta_loss(batch)
    loss.backward()
    return dict(method.named_parameters())[name].grad.detach().clone()


def finite_difference(method, batch, name, eps=1e-6, directions=None):
    """Central differences of the meta-loss w.r.t. parameter ``name``: per entry, or along the
    given directions."""
    param = dict(method.named_parameters())[name]
    method.train()

    def loss_at(delta):
        with torch.no_grad():
            param.add_(delta)
        value = method.meta_loss(batch)[0].item()
        with torch.no_grad():
            param.sub_(delta)
        return value

    if directions is None:
        out = torch.zeros_like(param)
        for i in range(param.numel()):
            delta = torch.zeros_like(param).view(-1)
            delta[i] = eps
            delta = delta.view_as(param)
            out.view(-1)[i] = (loss_at(delta) - loss_at(-delta)) / (2 * eps)
        return out
    return torch.tensor(
        [(loss_at(eps * v) - loss_at(-eps * v)) / (2 * eps) for v in directions], dtype=param.dtype
    )


# ---------------------------------------------------------------- second order


def test_second_order_meta_gradient_matches_finite_differences_identity():
    method = identity_maml(inner_steps=2, first_order=False)
    batch = make_batch((3,))
    for name in ("head.weight", "head.bias"):
        grad = meta_grad(method, batch, name)
        fd = finite_difference(method, batch, name)
        assert grad.abs().max() > 1e-3
        torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)


def test_second_order_meta_gradient_matches_finite_differences_conv4():
    method = conv_maml(inner_steps=2, first_order=False, adapt="all")
    batch = make_batch((1, 16, 16), n_tasks=2, n_shot=1, n_query=2)
    grad = meta_grad(method, batch, "head.weight")
    fd = finite_difference(method, batch, "head.weight")
    assert grad.abs().max() > 1e-4
    torch.testing.assert_close(grad, fd, rtol=1e-6, atol=1e-9)
    # the encoder's meta-gradient too, along a few random directions
    name = "encoder.convs.1.weight"
    grad = meta_grad(method, batch, name)
    g = torch.Generator().manual_seed(1)
    dirs = [torch.randn(grad.shape, generator=g, dtype=grad.dtype) for _ in range(3)]
    fd = finite_difference(method, batch, name, directions=dirs)
    torch.testing.assert_close(torch.stack([(grad * v).sum() for v in dirs]), fd,
                               rtol=1e-6, atol=1e-9)  # fmt: skip


# ---------------------------------------------------------------- first order


def fomaml_by_hand_identity(method: MAML, batch: TaskBatch, steps: int) -> torch.Tensor:
    """Mean over tasks of the query-loss gradient w.r.t. W', evaluated at the adapted W', b'."""
    alpha = method.cfg.inner_lr
    total = torch.zeros_like(method.head.weight)
    for sx, sy, qx, qy in zip(batch.support_x, batch.support_y, batch.query_x, batch.query_y):
        w = method.head.weight.detach().clone().requires_grad_()
        b = method.head.bias.detach().clone().requires_grad_()
        for _ in range(steps):
            loss = F.cross_entropy(sx @ w.T + b, sy)
            gw, gb = torch.autograd.grad(loss, (w, b))
            w = (w - alpha * gw).detach().requires_grad_()
            b = (b - alpha * gb).detach().requires_grad_()
        (gq,) = torch.autograd.grad(F.cross_entropy(qx @ w.T + b, qy), w)
        total += gq
    return total / batch.n_tasks


def test_first_order_gradient_is_the_query_gradient_at_the_adapted_parameters():
    batch = make_batch((3,))
    fo = identity_maml(inner_steps=2, first_order=True)
    so = identity_maml(inner_steps=2, first_order=False)
    grad_fo = meta_grad(fo, batch, "head.weight")
    expected = fomaml_by_hand_identity(fo, batch, steps=2)
    torch.testing.assert_close(grad_fo, expected, rtol=1e-10, atol=1e-12)
    grad_so = meta_grad(so, batch, "head.weight")
    assert (grad_so - grad_fo).abs().max() > 1e-4  # the second-order terms are not dropped


def test_first_order_conv4_matches_fomaml_and_differs_from_second_order():
    from torch.func import functional_call

    batch = make_batch((1, 16, 16), n_tasks=2, n_shot=1, n_query=2)
    fo = conv_maml(inner_steps=2, first_order=True)
    grad_fo = meta_grad(fo, batch, "head.weight")
    alpha = fo.cfg.inner_lr

    def net(params: dict, x: torch.Tensor) -> torch.Tensor:  # the encoder's own forward + head
        inner = {n[8:]: p for n, p in params.items() if n.startswith("encoder.")}
        h = functional_call(fo.encoder, inner, (x,))
        return F.linear(h, params["head.weight"], params["head.bias"])

    expected = torch.zeros_like(grad_fo)
    for sx, sy, qx, qy in zip(batch.support_x, batch.support_y, batch.query_x, batch.query_y):
        params = {n: p.detach().clone().requires_grad_() for n, p in fo.named_parameters()}
        for _ in range(2):
            loss = F.cross_entropy(net(params, sx[None])[0], sy)
            grads = torch.autograd.grad(loss, list(params.values()))
            params = {n: (p - alpha * gr).detach().requires_grad_()
                      for (n, p), gr in zip(params.items(), grads)}  # fmt: skip
        qloss = F.cross_entropy(net(params, qx[None])[0], qy)
        expected += torch.autograd.grad(qloss, params["head.weight"])[0] / batch.n_tasks
    torch.testing.assert_close(grad_fo, expected, rtol=1e-8, atol=1e-12)
    so = conv_maml(inner_steps=2, first_order=False)
    assert (meta_grad(so, batch, "head.weight") - grad_fo).abs().max() > 1e-6


# ---------------------------------------------------------------- adaptation


def test_adapted_parameters_are_k_plain_gradient_steps_per_task():
    method = identity_maml(inner_steps=3, inner_lr=0.3)
    batch = make_batch((3,), n_tasks=3)
    params = method.adapt(batch.support_x, batch.support_y)
    assert params["head.weight"].shape == (3, N_WAY, 3)
    assert params["head.bias"].shape == (3, N_WAY)
    for t in range(3):
        w = method.head.weight.detach().clone().requires_grad_()
        b = method.head.bias.detach().clone().requires_grad_()
        for _ in range(3):
            loss = F.cross_entropy(batch.support_x[t] @ w.T + b, batch.support_y[t])
            gw, gb = torch.autograd.grad(loss, (w, b))
            w = (w - 0.3 * gw).detach().requires_grad_()
            b = (b - 0.3 * gb).detach().requires_grad_()
        torch.testing.assert_close(params["head.weight"][t], w, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(params["head.bias"][t], b, rtol=1e-10, atol=1e-12)
    logits = method.predict(batch.query_x, params)
    assert logits.shape == (3, N_WAY * 3, N_WAY)
    expected = batch.query_x[1] @ params["head.weight"][1].T + params["head.bias"][1]
    torch.testing.assert_close(logits[1], expected)


def test_head_only_adaptation_leaves_encoder_parameters_unchanged():
    batch = make_batch((1, 16, 16), n_tasks=2, n_shot=1, n_query=2)
    method = conv_maml(inner_steps=2, inner_lr=0.5, adapt="head")
    params = method.adapt(batch.support_x, batch.support_y)
    original = dict(method.named_parameters())
    encoder_names = [n for n in params if not n.startswith("head.")]
    assert encoder_names and set(params) == set(original)
    for name in encoder_names:
        for t in range(2):
            assert torch.equal(params[name][t], original[name])
    for name in ("head.weight", "head.bias"):
        assert not torch.allclose(params[name][0], original[name])
    # ... while "all" adapts the encoder as well
    full = conv_maml(inner_steps=2, inner_lr=0.5, adapt="all")
    adapted = full.adapt(batch.support_x, batch.support_y)
    assert not torch.allclose(adapted["encoder.convs.0.weight"][0],
                              full.encoder.convs[0].weight)  # fmt: skip
    # the meta-gradient still reaches the (non-adapted) encoder through the features
    method.zero_grad()
    method.meta_loss(batch)[0].backward()
    assert method.encoder.convs[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("training", [True, False])
def test_adapt_does_not_mutate_the_module(training):
    batch = make_batch((1, 16, 16), n_tasks=2, n_shot=1, n_query=2)
    method = conv_maml(inner_steps=2, inner_lr=0.5)
    method.train(training)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    params = method.adapt(batch.support_x, batch.support_y)
    loss = F.cross_entropy(method.predict(batch.query_x, params).flatten(0, 1),
                           batch.query_y.flatten())  # fmt: skip
    if training:
        loss.backward()
    after = method.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key
    assert not torch.allclose(params["head.weight"][0], before["head.weight"])


def test_tasks_adapt_independently():
    method = identity_maml(inner_steps=2)
    batch = make_batch((3,), n_tasks=3)
    together = method.adapt(batch.support_x, batch.support_y)
    alone = method.adapt(batch.support_x[2:], batch.support_y[2:])
    for name in together:
        torch.testing.assert_close(together[name][2], alone[name][0])


def test_eval_mode_uses_inner_steps_test():
    batch = make_batch((3,), n_tasks=2)
    short = identity_maml(inner_steps=1, inner_steps_test=4)
    long = identity_maml(inner_steps=4)
    assert short.steps == 1
    short.eval()
    assert short.steps == 4
    long.train()
    expected = long.adapt(batch.support_x, batch.support_y)
    with torch.no_grad():  # as in evaluate(): adaptation still works under no_grad
        got = short.adapt(batch.support_x, batch.support_y)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name].detach())
    short.train()
    one_step = short.adapt(batch.support_x, batch.support_y)
    assert not torch.allclose(one_step["head.weight"], got["head.weight"])
    # None means the training count
    same = identity_maml(inner_steps=2, inner_steps_test=None).eval()
    assert same.steps == 2


def test_zero_test_steps_keep_the_initial_parameters():
    method = identity_maml(inner_steps=2, inner_steps_test=0).eval()
    batch = make_batch((3,))
    params = method.adapt(batch.support_x, batch.support_y)
    for t in range(batch.n_tasks):
        assert torch.equal(params["head.weight"][t], method.head.weight)


def test_n_way_mismatch_is_refused():
    method = identity_maml(inner_steps=1)
    batch = make_batch((3,))
    batch.n_way = 3
    with pytest.raises(ValueError, match="2-way"):
        method(batch)
