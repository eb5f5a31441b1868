"""MAML over hyper backbones (HyperResNets paper, Algorithm 2): the inner loop changes only the
layer embeddings and the head, the outer loop reaches the hypernetworks, the initial embeddings
and every other parameter."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hypermaml.config import MAMLConfig, load_config
from hypermaml.data import TaskBatch
from hypermaml.errors import ConfigError
from hypermaml.methods import MAML, build_method
from hypermaml.models import Conv4
from hypermaml.models.conv4net import Conv4Net
from hypermaml.models.grouped import GroupedEncoder

pytestmark = pytest.mark.usefixtures("single_thread")
N_WAY = 2


def hyper_maml(hyper: str = "stage", adapt: str = "embeddings", seed: int = 0) -> MAML:
    torch.manual_seed(seed)
    encoder = GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper=hyper, width=4))
    return MAML(encoder, N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.3, adapt=adapt)).double()


def batch(n_tasks: int = 2, n_shot: int = 2, n_query: int = 3, seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(N_WAY).repeat_interleave(n_shot)
    yq = torch.arange(N_WAY).repeat_interleave(n_query)
    xs = torch.rand(n_tasks, len(ys), 1, 16, 16, generator=g, dtype=torch.float64)
    xq = torch.rand(n_tasks, len(yq), 1, 16, 16, generator=g, dtype=torch.float64)
    return TaskBatch(xs + ys.view(1, -1, 1, 1, 1), ys.expand(n_tasks, -1).contiguous(),
                     xq + yq.view(1, -1, 1, 1, 1), yq.expand(n_tasks, -1).contiguous(),
                     N_WAY, n_shot)  # fmt: skip


@pytest.mark.parametrize("hyper", ["stage", "layer"])
def test_inner_loop_changes_only_embeddings_and_head(hyper):
    method = hyper_maml(hyper).train()
    b = batch()
    params = method.adapt(b.support_x, b.support_y)
    initial = dict(method.named_parameters())
    changed = {n for n, p in params.items() if not torch.equal(p[0], initial[n])}
    embeddings = {n for n in initial if n.endswith(".embedding")}
    assert embeddings and changed == embeddings | {"head.weight", "head.bias"}
    assert all("hypernets" not in n and ".norms." not in n for n in changed)


def test_inner_step_is_minus_alpha_times_the_embedding_gradient():
    method = hyper_maml("layer").train()
    b = batch(n_tasks=1)
    params = method.adapt(b.support_x, b.support_y)
    named = dict(method.named_parameters())
    loss = F.cross_entropy(method.logits(b.support_x)[0], b.support_y[0])
    names = method.adapted_names()
    grads = torch.autograd.grad(loss, [named[n] for n in names])
    for name, grad in zip(names, grads):
        torch.testing.assert_close(params[name][0], named[name] - 0.3 * grad)


@pytest.mark.parametrize("hyper", ["stage", "layer"])
def test_outer_loop_reaches_hypernetworks_initial_embeddings_head_and_plain_layers(hyper):
    method = hyper_maml(hyper).train()
    loss, _ = method.meta_loss(batch())
    loss.backward()
    for name, p in method.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    names = [n for n, _ in method.named_parameters()]
    assert any("hypernets" in n or ".hypernet." in n for n in names)


def test_second_order_meta_gradient_of_a_hypernetwork_matches_finite_differences():
    method = hyper_maml("stage").train()
    b = batch(n_tasks=1)
    hypernet = method.encoder.net.hypernets["stage1"].weight
    method.zero_grad()
    method.meta_loss(b)[0].backward()
    analytic = hypernet.grad[0, 0, 1, 1].item()
    eps = 1e-6
    with torch.no_grad():
        hypernet[0, 0, 1, 1] += eps
        plus = method.meta_loss(b)[0].item()
        hypernet[0, 0, 1, 1] -= 2 * eps
        minus = method.meta_loss(b)[0].item()
        hypernet[0, 0, 1, 1] += eps
    assert analytic == pytest.approx((plus - minus) / (2 * eps), rel=1e-4, abs=1e-8)


def test_embedding_adaptation_needs_a_hyper_backbone():
    torch.manual_seed(0)
    method = MAML(Conv4(1, 16, width=4), N_WAY, MAMLConfig(adapt="embeddings"))
    with pytest.raises(ValueError, match="model.hyper"):
        method.adapted_names()


def test_config_builds_hyper_backbones_and_refuses_unknown_ones():
    cfg = load_config("configs/cross_char_1s_maml.yaml",
                      ["model.hyper=layer", "method.adapt=embeddings"])  # fmt: skip
    method = build_method(cfg, (1, 28, 28))
    assert isinstance(method.encoder, GroupedEncoder)
    assert method.encoder.out_dim == 64
    cfg = load_config(None, ["model.backbone=conv4pool", "model.hyper=stage"])
    assert build_method(cfg, (1, 28, 28)).encoder.out_dim == 64
    with pytest.raises(ConfigError, match="model.backbone='resnet50'.*conv4pool"):
        load_config(None, ["model.backbone=resnet50", "model.hyper=stage"])
