"""ProtoNet: class-mean prototypes and negative squared Euclidean distances."""

from __future__ import annotations

import pytest
import torch

from hypermaml.data import TaskBatch
from hypermaml.methods import ProtoNet
from hypermaml.models import Conv4, IdentityEncoder

pytestmark = pytest.mark.usefixtures("single_thread")


def task(n_way, k, q, dim=4, n_tasks=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    sy = torch.arange(n_way).repeat_interleave(k).expand(n_tasks, -1).contiguous()
    qy = torch.arange(n_way).repeat_interleave(q).expand(n_tasks, -1).contiguous()
    return TaskBatch(torch.randn(n_tasks, n_way * k, dim, generator=g, dtype=torch.float64), sy,
                     torch.randn(n_tasks, n_way * q, dim, generator=g, dtype=torch.float64), qy,
                     n_way, k)  # fmt: skip


def test_prototypes_are_class_means():
    model = ProtoNet(IdentityEncoder(4), n_way=3)
    batch = task(3, k=4, q=1)
    # shuffle the support order: prototypes must follow the labels, not the positions
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    sx, sy = batch.support_x[:, perm], batch.support_y[:, perm]
    protos = model.adapt(sx, sy)["prototypes"]
    assert protos.shape == (2, 3, 4)
    for b in range(2):
        for c in range(3):
            torch.testing.assert_close(protos[b, c], sx[b][sy[b] == c].mean(0))


def test_logits_are_negative_squared_distances():
    model = ProtoNet(IdentityEncoder(4), n_way=3)
    batch = task(3, k=2, q=5)
    params = model.adapt(batch.support_x, batch.support_y)
    logits = model.predict(batch.query_x, params)
    assert logits.shape == (2, 15, 3)
    expected = -(torch.cdist(batch.query_x, params["prototypes"]) ** 2)
    torch.testing.assert_close(logits, expected, rtol=1e-9, atol=1e-9)
    assert (logits <= 1e-12).all()


def test_query_equal_to_a_prototype_is_classified_as_its_class():
    model = ProtoNet(IdentityEncoder(4), n_way=4)
    batch = task(4, k=3, q=1)
    protos = model.adapt(batch.support_x, batch.support_y)["prototypes"]
    order = torch.tensor([2, 0, 3, 1])
    queries = protos[:, order].clone().requires_grad_()
    logits = model.predict(queries, {"prototypes": protos})
    assert (logits.argmax(-1) == order).all()
    torch.testing.assert_close(
        logits.gather(-1, order.expand(2, -1)[..., None]).squeeze(-1),
        torch.zeros(2, 4, dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )
    logits.sum().backward()  # a finite gradient at distance 0
    assert torch.isfinite(queries.grad).all()


@pytest.mark.parametrize("n_way", [2, 5, 7])
def test_any_n_way_works_whatever_it_was_built_for(n_way):
    model = ProtoNet(IdentityEncoder(4), n_way=5)
    batch = task(n_way, k=2, q=3)
    # well separated classes: the mean of each class is shifted far along its own direction
    shift = torch.zeros(n_way, 4, dtype=torch.float64)
    shift[:, 0] = 50.0 * torch.arange(n_way)
    batch.support_x += shift.repeat_interleave(2, 0)
    batch.query_x += shift.repeat_interleave(3, 0)
    logits = model(batch)
    assert logits.shape == (2, n_way * 3, n_way)
    assert (logits.argmax(-1) == batch.query_y).all()


def test_conv4_protonet_shapes_and_gradient():
    torch.manual_seed(0)
    model = ProtoNet(Conv4(1, image_size=16, width=8), n_way=3)
    g = torch.Generator().manual_seed(0)
    sy = torch.arange(3).repeat_interleave(2).expand(2, -1).contiguous()
    qy = torch.arange(3).repeat_interleave(2).expand(2, -1).contiguous()
    batch = TaskBatch(torch.rand(2, 6, 1, 16, 16, generator=g), sy,
                      torch.rand(2, 6, 1, 16, 16, generator=g), qy, 3, 2)  # fmt: skip
    loss, logits = model.meta_loss(batch)
    assert logits.shape == (2, 6, 3)
    loss.backward()
    assert model.encoder.convs[0].weight.grad.abs().sum() > 0
