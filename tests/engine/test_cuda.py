"""The GPU path (skipped without CUDA; ``tools/gpu_check.sh`` runs these on a GPU machine): a
training step that never waits for the host, and shipped checkpoints scored on the GPU as on
the CPU."""

from __future__ import annotations

import pytest
import torch

from hypermaml.data import EpisodeSampler, TaskShape, load_split
from hypermaml.engine.precision import Precision
from hypermaml.evaluation import evaluate
from hypermaml.methods import load_method
from hypermaml.training import meta_step
from tests.methods.test_batching import build

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize(("kind", "cfg"), [
    ("hypermaml", {"warmup_epochs": 0, "switch_epochs": 0}),
    ("maml", {"inner_steps": 2, "first_order": False}),
    ("protonet", {}),
])  # fmt: skip
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_never_synchronises_with_the_host(kind, cfg, precision):
    from hypermaml.data.episodes import TaskBatch

    method = build(kind, **cfg).float().to(CUDA)
    g = torch.Generator().manual_seed(0)
    support_y = torch.arange(3).repeat_interleave(2).expand(4, -1).contiguous()
    query_y = torch.arange(3).repeat_interleave(4).expand(4, -1).contiguous()
    support_x = torch.rand(4, 6, 1, 16, 16, generator=g)
    batch = TaskBatch(
        support_x, support_y, torch.rand(4, 12, 1, 16, 16, generator=g), query_y, 3, 2
    )
    batch = batch.pin_memory().to(CUDA)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    prec = Precision(precision, CUDA)
    meta_step(method, optimizer, batch, precision=prec, check_finite=False)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, _ = meta_step(method, optimizer, batch, precision=prec, check_finite=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item()


@pytest.mark.parametrize("name", ["cross_char_1s_hypermaml", "cross_char_1s_maml",
                                  "cross_char_1s_protonet"])  # fmt: skip
def test_a_shipped_checkpoint_scores_on_the_gpu_as_on_the_cpu(data_root, name):
    data = load_split("cross_char", "test", data_root)
    shape = TaskShape(5, 1, 15)
    cpu = evaluate(load_method(f"checkpoints/{name}").method, data, shape, n_tasks=60, seed=0)
    gpu = evaluate(load_method(f"checkpoints/{name}", CUDA).method, data, shape, n_tasks=60,
                   seed=0)  # fmt: skip
    assert abs(gpu.accuracy - cpu.accuracy) < 0.5
    same = sum(a == b for a, b in zip(gpu.task_accuracies, cpu.task_accuracies))
    assert same >= 55


def test_sampling_pins_and_copies_a_batch(data_root):
    batch = EpisodeSampler(load_split("omniglot", "train", data_root), TaskShape(5, 1, 5)).sample(2)
    pinned = batch.pin_memory()
    assert pinned.support_x.is_pinned()
    assert torch.equal(pinned.to(CUDA).query_x.cpu(), batch.query_x)
