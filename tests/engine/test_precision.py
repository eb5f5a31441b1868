"""Mixed precision: the meta-gradient under autocast keeps second-order MAML's second-order term
and agrees with the float32 one to a stated tolerance; fp16 takes scaled steps and skips the
overflowing ones; evaluation in bfloat16 scores a trained model as float32 does."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hypermaml.data import EpisodeSampler, TaskShape, load_split
from hypermaml.engine.precision import Precision, matrix_units
from hypermaml.evaluation import evaluate
from hypermaml.methods import load_method
from hypermaml.training import meta_step
from tests.methods.test_batching import build, random_batch

CPU = torch.device("cpu")
COSINE = {"bf16": 0.97, "fp16": 0.99}
"""Least cosine similarity of a meta-gradient under autocast to the float32 one (measured on
the shipped MAML: bf16 0.990, fp16 0.996, while first- and second-order differ: 0.33)."""


def _meta_gradient(method, batch, precision: Precision) -> torch.Tensor:
    """The flat meta-gradient, without the conv biases before BatchNorm (their true gradient is
    zero: what they get is rounding noise)."""
    method.zero_grad()
    with precision.autocast():
        loss, _ = method.meta_loss(batch)
    loss.backward()
    named = [(n, p) for n, p in method.named_parameters() if p.grad is not None]
    return torch.cat([p.grad.flatten() for n, p in named
                      if not (n.startswith("encoder.convs") and n.endswith("bias"))])  # fmt: skip


@pytest.mark.parametrize("name", ["bf16", "fp16"])
def test_second_order_maml_meta_gradient_under_autocast(data_root, single_thread, name):
    method = load_method("checkpoints/cross_char_1s_maml").method.train()
    assert method.cfg.first_order is False
    batch = EpisodeSampler(load_split("cross_char", "train", data_root), TaskShape(5, 1, 16),
                           seed=3).sample(4)  # fmt: skip
    reference = _meta_gradient(method, batch, Precision("fp32", CPU))
    low = _meta_gradient(method, batch, Precision(name, CPU))
    method.cfg.first_order = True
    first_order = _meta_gradient(method, batch, Precision("fp32", CPU))
    assert F.cosine_similarity(low, reference, dim=0) > COSINE[name]
    # the second-order term survives autocast: far nearer the second-order gradient than the first
    assert F.cosine_similarity(low, first_order, dim=0) < 0.6


def test_fp16_scales_the_loss_and_skips_a_step_that_overflows(single_thread):
    method = build("hypermaml", warmup_epochs=0, switch_epochs=0).float()
    batch = random_batch()
    batch = type(batch)(batch.support_x.float(), batch.support_y, batch.query_x.float(),
                        batch.query_y, batch.n_way, batch.n_shot)  # fmt: skip
    precision = Precision("fp16", CPU)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    before = [p.detach().clone() for p in method.parameters()]
    loss, _ = meta_step(method, optimizer, batch, precision=precision)
    assert math.isfinite(loss.item())
    assert any(not torch.equal(a, p) for a, p in zip(before, method.parameters()))
    scale = precision.state_dict()["scale"]
    assert scale == 2.0**16  # the scaler's first factor, kept for a resume

    real = method.meta_loss
    method.meta_loss = lambda b: (lambda out: (out[0] * 1e30, out[1]))(real(b))  # overflow
    after = [p.detach().clone() for p in method.parameters()]
    meta_step(method, optimizer, batch, precision=precision, check_finite=False)
    assert all(torch.equal(a, p) for a, p in zip(after, method.parameters()))  # skipped
    assert precision.state_dict()["scale"] == scale / 2  # and the factor halved


def test_evaluation_in_bf16_scores_a_trained_model_as_fp32_does(data_root, single_thread):
    method = load_method("checkpoints/cross_char_1s_hypermaml").method
    data = load_split("cross_char", "test", data_root)
    shape = TaskShape(5, 1, 15)
    fp32 = evaluate(method, data, shape, n_tasks=40, seed=0)
    bf16 = evaluate(method, data, shape, n_tasks=40, seed=0, precision=Precision("bf16", CPU))
    assert fp32.accuracy > 70
    assert abs(bf16.accuracy - fp32.accuracy) < 2.0
    same = sum(a == b for a, b in zip(bf16.task_accuracies, fp32.task_accuracies))
    assert same >= 20  # most tasks score exactly alike


def test_the_matrix_units_are_reported():
    assert matrix_units() in ("AMX", "AVX512-BF16", "none", "unknown")
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        Precision("fp8", CPU)
