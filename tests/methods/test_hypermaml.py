"""HyperMAML: shapes, the hypernetwork's input, gradient flow, the warm-up switch, detached
enhancement, permutation invariance of the support set."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.config import HyperMAMLConfig
from hypermaml.data import TaskBatch
from hypermaml.methods import HyperMAML
from hypermaml.models import Conv4, IdentityEncoder

pytestmark = pytest.mark.usefixtures("single_thread")

N, D, W, S, ALPHA = 3, 4, 4, 10, 0.3


def config(**kw) -> HyperMAMLConfig:
    base = dict(hn_depth=3, hn_width=16, enhancement=True, warmup_epochs=W, switch_epochs=S,
                warmup_inner_lr=ALPHA, warmup_inner_steps=1)  # fmt: skip
    base.update(kw)
    return HyperMAMLConfig(**base)


def identity_model(seed=0, **kw) -> HyperMAML:
    torch.manual_seed(seed)
    model = HyperMAML(IdentityEncoder(D), N, config(**kw)).double()
    with torch.no_grad():  # make the universal classifier's bias matter
        model.head.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return model


def conv_model(seed=0, **kw) -> HyperMAML:
    torch.manual_seed(seed)
    return HyperMAML(Conv4(1, image_size=16, width=8), N, config(**kw)).double()


def make_batch(x_shape, n_tasks=2, k=1, q=2, seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(N).repeat_interleave(k).expand(n_tasks, -1).contiguous()
    qy = torch.arange(N).repeat_interleave(q).expand(n_tasks, -1).contiguous()
    sx = torch.randn(n_tasks, N * k, *x_shape, generator=g, dtype=torch.float64)
    qx = torch.randn(n_tasks, N * q, *x_shape, generator=g, dtype=torch.float64)
    return TaskBatch(sx, sy, qx, qy, N, k)


def hand_hypernet_rows(model: HyperMAML, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per class: [mean embedding, mean softmax of the universal classifier, one-hot label]."""
    rows = []
    for b in range(emb.shape[0]):
        task = []
        for c in range(N):
            e = emb[b][y[b] == c]
            parts = [e.mean(0)]
            if model.cfg.enhancement:
                probs = F.softmax(e @ model.head.weight.T + model.head.bias, -1)
                parts += [probs.mean(0), F.one_hot(torch.tensor(c), N).to(emb.dtype)]
            task.append(torch.cat(parts))
        rows.append(torch.stack(task))
    return torch.stack(rows)


def hand_maml_step(model: HyperMAML, emb, y, steps=1):
    """Per task: the head after ``steps`` gradient steps of lr alpha on the mean support CE."""
    ws, bs = [], []
    for b in range(emb.shape[0]):
        w = model.head.weight.detach().clone().requires_grad_()
        bias = model.head.bias.detach().clone().requires_grad_()
        for _ in range(steps):
            loss = F.cross_entropy(emb[b].detach() @ w.T + bias, y[b])
            gw, gb = torch.autograd.grad(loss, (w, bias))
            w = (w - ALPHA * gw).detach().requires_grad_()
            bias = (bias - ALPHA * gb).detach().requires_grad_()
        ws.append(w.detach())
        bs.append(bias.detach())
    return torch.stack(ws), torch.stack(bs)


# ---------------------------------------------------------------- structure and shapes


@pytest.mark.parametrize("training", [True, False])
def test_shapes_of_adapt_and_predict(training):
    model = conv_model().train(training)
    model.set_epoch(W + 2)
    batch = make_batch((1, 16, 16), n_tasks=2, k=2, q=3)
    params = model.adapt(batch.support_x, batch.support_y)
    assert params["weight"].shape == (2, N, 8)
    assert params["bias"].shape == (2, N)
    logits = model.predict(batch.query_x, params)
    assert logits.shape == (2, N * 3, N)
    assert model(batch).shape == (2, N * 3, N)


def test_hypernetwork_shape_with_and_without_enhancement():
    with_e = identity_model(enhancement=True, hn_depth=3, hn_width=16)
    without = identity_model(enhancement=False, hn_depth=2, hn_width=16)
    linears = [m for m in with_e.hypernet if isinstance(m, torch.nn.Linear)]
    assert [lin.in_features for lin in linears] == [D + 2 * N, 16, 16]
    assert linears[-1].out_features == D + 1
    assert sum(isinstance(m, torch.nn.ReLU) for m in with_e.hypernet) == 2
    assert isinstance(with_e.hypernet[-1], torch.nn.Linear)  # no activation on the output
    assert without.hypernet[0].in_features == D
    assert [m.in_features for m in without.hypernet if isinstance(m, torch.nn.Linear)] == [D, 16]
    batch = make_batch((D,), k=2)
    assert with_e.hypernet_input(batch.support_x, batch.support_y).shape == (2, N, D + 2 * N)
    assert without.hypernet_input(batch.support_x, batch.support_y).shape == (2, N, D)
    assert torch.equal(
        with_e.head.bias.new_zeros(N),
        HyperMAML(IdentityEncoder(D), N, config()).head.bias.double(),
    )


@pytest.mark.parametrize("enhancement", [True, False])
def test_hypernetwork_input_is_class_means_of_embedding_probs_and_one_hot(enhancement):
    model = identity_model(enhancement=enhancement)
    batch = make_batch((D,), n_tasks=2, k=5)
    got = model.hypernet_input(batch.support_x, batch.support_y)
    expected = hand_hypernet_rows(model, batch.support_x, batch.support_y)
    torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------- gradient flow


def test_gradients_reach_encoder_hypernetwork_and_classifier_after_the_switch():
    model = conv_model().train()
    model.set_epoch(W + S)
    assert model.hypernet_weight() == 1.0
    loss, logits = model.meta_loss(make_batch((1, 16, 16)))
    loss.backward()
    groups = {"encoder": model.encoder, "hypernet": model.hypernet, "classifier": model.head}
    for group, module in groups.items():
        for name, p in module.named_parameters():
            if group == "encoder" and name.startswith("convs.") and name.endswith(".bias"):
                # batch-statistics BatchNorm subtracts the mean, so a conv bias before it has
                # no effect and its gradient is zero (up to rounding)
                assert p.grad is None or p.grad.abs().max() < 1e-10, f"{group}.{name}"
                continue
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{group}.{name}"


def test_gradients_during_the_switch_reach_everything():
    model = conv_model().train()
    model.set_epoch(W + S // 2)
    model.meta_loss(make_batch((1, 16, 16)))[0].backward()
    assert model.hypernet[0].weight.grad.abs().sum() > 0
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- the warm-up switch


def test_hypernet_weight_schedule():
    model = identity_model().train()
    expected = {0: 0.0, W - 1: 0.0, W: 0.0, W + 1: 0.1, W + S // 2: 0.5, W + S - 1: 0.9,
                W + S: 1.0, W + S + 1: 1.0, 10_000: 1.0}  # fmt: skip
    for epoch, lam in expected.items():
        model.set_epoch(epoch)
        assert model.hypernet_weight() == pytest.approx(lam), epoch
    model.eval()
    for epoch in (0, W - 1, W, W + S // 2, W + S):
        model.set_epoch(epoch)
        assert model.hypernet_weight() == 1.0
    no_switch = identity_model(warmup_epochs=3, switch_epochs=0).train()
    no_switch.set_epoch(2)
    assert no_switch.hypernet_weight() == 0.0
    no_switch.set_epoch(3)
    assert no_switch.hypernet_weight() == 1.0


@pytest.mark.parametrize("steps", [1, 2])
def test_warm_up_is_maml_on_the_head_and_leaves_the_hypernetwork_unused(steps):
    model = identity_model(warmup_inner_steps=steps).train()
    model.set_epoch(W - 1)
    batch = make_batch((D,), n_tasks=3, k=2)
    params = model.adapt(batch.support_x, batch.support_y)
    w, b = hand_maml_step(model, batch.support_x, batch.support_y, steps)
    torch.testing.assert_close(params["weight"], w, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(params["bias"], b, rtol=1e-10, atol=1e-12)
    loss, _ = model.meta_loss(batch)
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.hypernet.parameters())
    assert model.head.weight.grad.abs().sum() > 0


def test_update_during_the_switch_is_the_convex_combination():
    model = identity_model().train()
    epoch = W + 3
    model.set_epoch(epoch)
    lam = model.hypernet_weight()
    assert lam == pytest.approx(0.3)
    batch = make_batch((D,), n_tasks=2, k=2)
    params = model.adapt(batch.support_x, batch.support_y)
    emb, y = batch.support_x, batch.support_y
    # the two parts by the method's own helpers ...
    hw, hb = model.hypernet_update(emb, y)
    mw, mb = model.maml_update(emb, y)
    w0, b0 = model.head.weight, model.head.bias
    torch.testing.assert_close(params["weight"], w0 + lam * hw + (1 - lam) * mw)
    torch.testing.assert_close(params["bias"], b0 + lam * hb + (1 - lam) * mb)
    # ... and by hand: H(rows) and -alpha * grad of the support loss
    out = model.hypernet(hand_hypernet_rows(model, emb, y))
    w1, b1 = hand_maml_step(model, emb, y)
    torch.testing.assert_close(params["weight"], w0 + lam * out[..., :-1] + (1 - lam) * (w1 - w0))
    torch.testing.assert_close(params["bias"], b0 + lam * out[..., -1] + (1 - lam) * (b1 - b0))


@pytest.mark.parametrize("epoch", [0, W - 1, W + 3, W + S])
def test_eval_mode_uses_the_hypernetwork_alone_without_gradients(epoch, monkeypatch):
    model = identity_model().eval()
    model.set_epoch(epoch)
    batch = make_batch((D,), n_tasks=2, k=2)
    out = model.hypernet(hand_hypernet_rows(model, batch.support_x, batch.support_y))

    def no_grad_allowed(*args, **kwargs):
        raise AssertionError("adaptation computed a gradient")

    monkeypatch.setattr(torch.autograd, "grad", no_grad_allowed)
    with torch.no_grad():
        params = model.adapt(batch.support_x, batch.support_y)
    torch.testing.assert_close(params["weight"], model.head.weight + out[..., :-1])
    torch.testing.assert_close(params["bias"], model.head.bias + out[..., -1])


# ---------------------------------------------------------------- the enhancement is detached


def reference_loss(model: HyperMAML, batch: TaskBatch, detach: bool) -> torch.Tensor:
    """Meta-loss at lambda = 1 computed by hand; predictions for the hypernetwork come from a
    detached copy of the classifier and of the embeddings when ``detach``."""
    emb = model.encoder(batch.support_x)
    weight, bias = model.head.weight, model.head.bias
    if detach:
        e_in, w_in, b_in = emb.detach(), weight.detach(), bias.detach()
    else:
        e_in, w_in, b_in = emb, weight, bias
    probs = F.softmax(e_in @ w_in.T + b_in, -1)
    onehot = F.one_hot(batch.support_y, N).to(emb.dtype)
    counts = onehot.sum(1)[..., None]
    per_class = onehot.transpose(1, 2)
    labels = torch.eye(N, dtype=emb.dtype).expand(emb.shape[0], -1, -1)
    rows = torch.cat([per_class @ emb / counts, per_class @ probs / counts, labels], -1)
    out = model.hypernet(rows)
    w = weight + out[..., :-1]
    b = bias + out[..., -1]
    logits = torch.baddbmm(b[:, None], model.encoder(batch.query_x), w.transpose(1, 2))
    return F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())


@pytest.mark.parametrize("make", [identity_model, conv_model])
def test_enhancement_predictions_are_detached(make):
    model = make().train()
    model.set_epoch(W + S)
    shape = (D,) if make is identity_model else (1, 16, 16)
    batch = make_batch(shape, n_tasks=2, k=2)
    params = [p for p in model.parameters()]

    loss, _ = model.meta_loss(batch)
    got = torch.autograd.grad(loss, params, allow_unused=True)
    want = torch.autograd.grad(reference_loss(model, batch, detach=True), params)
    attached = torch.autograd.grad(reference_loss(model, batch, detach=False), params)
    torch.testing.assert_close(loss, reference_loss(model, batch, detach=True))
    names = [n for n, _ in model.named_parameters()]
    for name, g, w in zip(names, got, want):
        torch.testing.assert_close(g, w, msg=lambda m, name=name: f"{name}: {m}")
    # the test is sensitive: without the detach, the classifier's gradient differs
    i = names.index("head.weight")
    assert (attached[i] - want[i]).abs().max() > 1e-8


# ---------------------------------------------------------------- aggregation over shots


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make", [identity_model, conv_model])
def test_permuting_the_support_set_does_not_change_the_adapted_parameters(make, training):
    model = make().train(training)
    model.set_epoch(W + 3)  # both the hypernetwork and the MAML step in training mode
    shape = (D,) if make is identity_model else (1, 16, 16)
    batch = make_batch(shape, n_tasks=2, k=5)
    base = model.adapt(batch.support_x, batch.support_y)
    g = torch.Generator().manual_seed(1)
    perms = [torch.randperm(N * 5, generator=g) for _ in range(2)]
    sx = torch.stack([batch.support_x[t][p] for t, p in enumerate(perms)])
    sy = torch.stack([batch.support_y[t][p] for t, p in enumerate(perms)])
    assert not torch.equal(sy, batch.support_y)
    moved = model.adapt(sx, sy)
    for key in ("weight", "bias"):
        torch.testing.assert_close(moved[key], base[key], rtol=1e-10, atol=1e-12)


def test_five_shot_tasks_work_and_average_the_shots():
    model = identity_model().eval()
    batch = make_batch((D,), n_tasks=2, k=5, q=4)
    logits = model(batch)
    assert logits.shape == (2, N * 4, N)
    # the per-class input holds the mean embedding over the five shots of the class
    rows = model.hypernet_input(batch.support_x, batch.support_y)
    means = batch.support_x.reshape(2, N, 5, D).mean(2)
    torch.testing.assert_close(rows[..., :D], means)


def test_adaptation_does_not_depend_on_earlier_tasks():
    """The hypernetwork sees the universal classifier's predictions, whatever ran before."""
    model = identity_model().train()
    model.set_epoch(W + S)
    first, second = make_batch((D,), seed=1), make_batch((D,), seed=2)
    fresh = model.adapt(second.support_x, second.support_y)
    model.adapt(first.support_x, first.support_y)
    model(first)
    again = model.adapt(second.support_x, second.support_y)
    for key in fresh:
        assert torch.equal(fresh[key], again[key])


def test_adapt_does_not_mutate_the_module():
    model = conv_model().train()
    model.set_epoch(W + 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.meta_loss(make_batch((1, 16, 16)))[0].backward()
    for key, value in model.state_dict().items():
        assert torch.equal(before[key], value), key
