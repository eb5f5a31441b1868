"""The batched paths give what adapting one task at a time gives: the same query logits and the
same meta-gradients (to 1e-5), for every method, in training and at evaluation."""

from __future__ import annotations

import pytest
import torch

from hypermaml.config import HyperMAMLConfig, MAMLConfig
from hypermaml.data import TaskBatch
from hypermaml.methods import MAML, HyperMAML, ProtoNet
from hypermaml.models import Conv4
from tests.models.networks import narrow_encoder

N_WAY, K_SHOT, N_QUERY, TASKS = 3, 2, 4, 3


def random_batch(seed: int = 0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    support_x = torch.rand(TASKS, N_WAY * K_SHOT, 1, 16, 16, generator=g, dtype=torch.float64)
    query_x = torch.rand(TASKS, N_WAY * N_QUERY, 1, 16, 16, generator=g, dtype=torch.float64)
    support_y = torch.arange(N_WAY).repeat_interleave(K_SHOT).expand(TASKS, -1).contiguous()
    query_y = torch.arange(N_WAY).repeat_interleave(N_QUERY).expand(TASKS, -1).contiguous()
    return TaskBatch(support_x, support_y, query_x, query_y, N_WAY, K_SHOT)


def one_task(batch: TaskBatch, b: int) -> TaskBatch:
    return TaskBatch(
        batch.support_x[b : b + 1], batch.support_y[b : b + 1],
        batch.query_x[b : b + 1], batch.query_y[b : b + 1], batch.n_way, batch.n_shot,
    )  # fmt: skip


def encoder() -> Conv4:
    return Conv4(in_channels=1, image_size=16, width=8)


def build(kind: str, **cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "maml":
        method = MAML(encoder(), N_WAY, MAMLConfig(**cfg))
    elif kind == "hypermaml":
        method = HyperMAML(encoder(), N_WAY, HyperMAMLConfig(hn_width=16, **cfg))
    else:
        method = ProtoNet(encoder(), N_WAY)
    return method.double()


def batched_and_per_task(method, batch: TaskBatch):
    """(logits, meta-gradients) of the whole batch, and of the tasks one by one, averaged."""
    method.zero_grad()
    loss, logits = method.meta_loss(batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}

    method.zero_grad()
    single_logits = []
    for b in range(batch.n_tasks):
        task_loss, task_logits = method.meta_loss(one_task(batch, b))
        (task_loss / batch.n_tasks).backward()
        single_logits.append(task_logits)
    single_grads = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
    return logits, grads, torch.cat(single_logits), single_grads


def assert_same(a_logits, a_grads, b_logits, b_grads) -> None:
    torch.testing.assert_close(a_logits, b_logits, rtol=1e-5, atol=1e-5)
    assert a_grads.keys() == b_grads.keys() and a_grads
    for name in a_grads:
        torch.testing.assert_close(a_grads[name], b_grads[name], rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("batching", ["loop", "vmap"])
def test_maml_batch_equals_one_task_at_a_time(first_order, batching):
    method = build("maml", inner_steps=2, inner_lr=0.3, first_order=first_order, batching=batching)
    assert_same(*batched_and_per_task(method, random_batch()))


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("adapt", ["all", "head"])
def test_maml_vmap_equals_loop(first_order, adapt):
    batch = random_batch(1)
    results = []
    for batching in ("loop", "vmap"):
        method = build("maml", inner_steps=2, inner_lr=0.3, first_order=first_order,
                       adapt=adapt, batching=batching)  # fmt: skip
        method.zero_grad()
        loss, logits = method.meta_loss(batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
        method.eval()
        with torch.no_grad():
            test_logits = method(batch)
            unadapted = method.logits(batch.query_x)
        results.append((logits, grads, test_logits))
    (la, ga, ta), (lb, gb, tb) = results
    assert_same(la, ga, lb, gb)
    torch.testing.assert_close(ta, tb, rtol=1e-5, atol=1e-5)
    # the inner loop really adapts: test logits differ from the unadapted network's
    assert (ta - unadapted).abs().max() > 1e-2


@pytest.mark.parametrize("warmup", [(0, 0), (5, 0), (0, 10)], ids=["hypernet", "maml", "mixed"])
def test_hypermaml_batch_equals_one_task_at_a_time(warmup):
    method = build("hypermaml", warmup_epochs=warmup[0], switch_epochs=warmup[1],
                   warmup_inner_lr=0.3)  # fmt: skip
    method.set_epoch(3)
    assert_same(*batched_and_per_task(method, random_batch(2)))


def test_protonet_batch_equals_one_task_at_a_time():
    assert_same(*batched_and_per_task(build("protonet"), random_batch(3)))


@pytest.mark.parametrize("backbone", ["conv4", "resnet12"])
def test_maml_vmap_equals_loop_on_a_grouped_encoder(backbone):
    """Second order under vmap through a residual network's BatchNorm: the affine parameters
    are applied outside batch_norm there (``models/norms.py``), else the gradients differ."""
    batch = random_batch(4)
    results = []
    for batching in ("loop", "vmap"):
        torch.manual_seed(0)
        encoder = narrow_encoder(backbone, "stage", channels=1, size=16)
        cfg = MAMLConfig(inner_steps=2, inner_lr=0.3, batching=batching)
        method = MAML(encoder, N_WAY, cfg).double()
        loss, logits = method.meta_loss(batch)
        loss.backward()
        results.append((logits, {n: p.grad.clone() for n, p in method.named_parameters()}))
    assert_same(*results[0], *results[1])
