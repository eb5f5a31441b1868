"""Every method trains on every backbone (plain and hyper) through the encoder contract alone:
one meta-step each, and MAML's second-order meta-gradient through a ResNet and a HyperResNet
against finite differences."""

from __future__ import annotations

import pytest
import torch

from hypermaml.config import HyperMAMLConfig, MAMLConfig
from hypermaml.data import TaskBatch
from hypermaml.methods import MAML, HyperMAML, ProtoNet
from hypermaml.models import GroupedEncoder
from hypermaml.models.resnet10 import ResNet10
from hypermaml.models.resnets import ResNet12
from tests.methods.test_maml import finite_difference, meta_grad
from tests.models.networks import BACKBONES, HYPER_MODES, narrow_encoder

pytestmark = pytest.mark.usefixtures("single_thread")
N_WAY, SIZE = 2, 32

METHODS = {
    "maml-all": lambda e: MAML(e, N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.1, adapt="all")),
    "maml-head": lambda e: MAML(e, N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.1, adapt="head")),
    "maml-embeddings": lambda e: MAML(
        e, N_WAY, MAMLConfig(inner_steps=1, inner_lr=0.1, adapt="embeddings")
    ),
    "hypermaml": lambda e: HyperMAML(
        e, N_WAY, HyperMAMLConfig(hn_width=8, warmup_epochs=0, switch_epochs=0)
    ),
    "protonet": lambda e: ProtoNet(e, N_WAY),
}


def task_batch(
    shape: tuple[int, ...], n_tasks: int = 2, n_shot: int = 2, n_query: int = 2, seed: int = 0
) -> TaskBatch:
    """Random images [n_tasks, N * k, *shape] (float64) with a class signal added."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(N_WAY).repeat_interleave(n_shot)
    yq = torch.arange(N_WAY).repeat_interleave(n_query)
    signal = [1] * len(shape)
    xs = torch.rand(n_tasks, len(ys), *shape, generator=g, dtype=torch.float64)
    xq = torch.rand(n_tasks, len(yq), *shape, generator=g, dtype=torch.float64)
    return TaskBatch(xs + 0.5 * ys.view(1, -1, *signal), ys.expand(n_tasks, -1).contiguous(),
                     xq + 0.5 * yq.view(1, -1, *signal), yq.expand(n_tasks, -1).contiguous(),
                     N_WAY, n_shot)  # fmt: skip


def cases() -> list[tuple[str, str, str]]:
    """(backbone, hyper, method) for every method that applies: embedding adaptation needs a
    hyper backbone."""
    return [(backbone, hyper, method)
            for backbone in BACKBONES for hyper in HYPER_MODES for method in METHODS
            if method != "maml-embeddings" or hyper != "none"]  # fmt: skip


@pytest.mark.parametrize(("backbone", "hyper", "method"), cases())
def test_one_meta_step_on_every_backbone(backbone, hyper, method):
    torch.manual_seed(0)
    model = METHODS[method](narrow_encoder(backbone, hyper, size=SIZE)).double().train()
    before = {n: p.detach().clone() for n, p in model.encoder.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss, logits = model.meta_loss(task_batch((3, SIZE, SIZE)))
    assert logits.shape == (2, 2 * N_WAY, N_WAY) and torch.isfinite(loss)
    loss.backward()
    encoder_grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in encoder_grads)
    assert sum(g.abs().sum() for g in encoder_grads) > 0  # the meta-gradient reaches the encoder
    optimizer.step()
    assert any(not torch.equal(p, before[n]) for n, p in model.encoder.named_parameters())


@pytest.mark.parametrize("backbone", ["resnet12", "resnet10", "wrn"])
def test_maml_meta_step_with_per_step_batchnorm(backbone):
    """per_step: one BatchNorm set per inner step and one for the query, each of them trained."""
    torch.manual_seed(0)
    encoder = narrow_encoder(backbone, "stage", bn="per_step", bn_steps=3, size=SIZE)
    model = MAML(encoder, N_WAY, MAMLConfig(inner_steps=2, inner_lr=0.1)).double().train()
    loss, _ = model.meta_loss(task_batch((3, SIZE, SIZE)))
    loss.backward()
    norm_grads = [p.grad for n, p in model.named_parameters() if p.ndim == 2 and "bn" in n]
    assert norm_grads and all(g.shape[0] == 3 for g in norm_grads)
    assert all((g.abs().sum(1) > 0).all() for g in norm_grads)  # every set was used
    assert not model.tasks_are_independent()  # running statistics: tasks run in one thread


# ---------------------------------------------------------------- finite differences


def two_stage_maml(network: torch.nn.Module, adapt: str) -> MAML:
    cfg = MAMLConfig(inner_steps=2, inner_lr=0.1, first_order=False, adapt=adapt)
    return MAML(GroupedEncoder(network), N_WAY, cfg).double()  # type: ignore[arg-type]


def check_directions(method: MAML, batch: TaskBatch, name: str, n: int = 2) -> None:
    """The meta-gradient of ``name`` along ``n`` random directions against central
    differences of the meta-loss."""
    grad = meta_grad(method, batch, name)
    assert grad.abs().max() > 1e-6, name
    g = torch.Generator().manual_seed(1)
    dirs = [torch.randn(grad.shape, generator=g, dtype=grad.dtype) for _ in range(n)]
    fd = finite_difference(method, batch, name, directions=dirs)
    analytic = torch.stack([(grad * v).sum() for v in dirs])
    torch.testing.assert_close(analytic, fd, rtol=1e-6, atol=1e-9, msg=name)


def test_second_order_meta_gradient_through_a_resnet_matches_finite_differences():
    torch.manual_seed(0)
    method = two_stage_maml(ResNet12(3, 0, widths=(3, 4)), adapt="all")
    batch = task_batch((3, 8, 8), n_tasks=1, n_shot=1, n_query=2)
    fd = finite_difference(method, batch, "head.weight")  # every entry: 2 x 4
    torch.testing.assert_close(meta_grad(method, batch, "head.weight"), fd, rtol=1e-6, atol=1e-9)
    for name in ("encoder.net.stages.0.conv1.weight", "encoder.net.stages.1.shortcut.0.weight",
                 "encoder.net.stages.1.bn2.weight"):  # fmt: skip
        check_directions(method, batch, name)


def test_second_order_meta_gradient_through_a_hyper_resnet_matches_finite_differences():
    """MAML over a HyperResNet (variant 1): the inner loop adapts embeddings and head; the
    meta-gradient reaches the shared hypernetworks, the embeddings and the plain layers."""
    torch.manual_seed(0)
    network = ResNet10(3, 0, base_width=2, hyper="stage", blocks=(1, 1))
    method = two_stage_maml(network, adapt="embeddings")
    batch = task_batch((3, 8, 8), n_tasks=1, n_shot=1, n_query=2)
    for name in ("encoder.net.hypernets.stage1.weight", "encoder.net.hypernets.stage2.weight",
                 "encoder.net.stages.0.0.conv1.embedding", "encoder.net.stem.weight",
                 "head.bias"):  # fmt: skip
        check_directions(method, batch, name)
