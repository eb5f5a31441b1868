"""Task parallelism: worker threads give the serial results (meta-gradients to 1e-5, evaluation
accuracies exactly), restore the thread count, and keep methods with running statistics serial."""

from __future__ import annotations

import threading

import pytest
import torch
from test_batching import build, random_batch

from hypermaml.config import MAMLConfig
from hypermaml.evaluation import evaluate
from hypermaml.methods import MAML, HyperMAML
from hypermaml.models import Conv4
from hypermaml.models.conv4net import Conv4Net
from hypermaml.models.grouped import GroupedEncoder
from hypermaml.parallel import TaskParallel
from hypermaml.training.trainer import meta_step

CASES = [
    ("hypermaml", {"warmup_epochs": 0, "switch_epochs": 0}),
    ("hypermaml", {"warmup_epochs": 1, "switch_epochs": 0}),  # MAML steps on the head
    ("maml", {"inner_steps": 2, "first_order": False}),
    ("protonet", {}),
]


def _step_grads(method, batch, parallel) -> dict[str, torch.Tensor]:
    """Gradients a meta_step applied (SGD with lr 1 and no momentum: weight change = -grad)."""
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    optimizer = torch.optim.SGD(method.parameters(), lr=1.0)
    meta_step(method, optimizer, batch, parallel)
    return {n: before[n] - p.detach() for n, p in method.named_parameters()}


@pytest.mark.parametrize(("kind", "cfg"), CASES)
def test_parallel_meta_step_equals_serial(kind, cfg):
    batch = random_batch()  # 3 tasks: split 2 + 1 over two workers
    serial = _step_grads(build(kind, **cfg), batch, None)
    with TaskParallel(2) as pool:
        parallel = _step_grads(build(kind, **cfg), batch, pool)
    assert any(g.abs().max() > 0 for g in serial.values())
    for name, grad in serial.items():
        torch.testing.assert_close(parallel[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_parallel_evaluation_gives_the_serial_accuracies(tiny_images):
    torch.manual_seed(0)
    method = HyperMAML(Conv4(1, 16, width=8), 3, build("hypermaml").cfg)
    args = (method, tiny_images, 3, 1, 2, 12, 0, 2)  # 12 tasks in batches of 2
    serial = evaluate(*args, parallel=TaskParallel(1))
    with TaskParallel(2) as pool:
        parallel = evaluate(*args, parallel=pool)
    assert parallel.task_accuracies == serial.task_accuracies
    assert len(parallel.task_accuracies) == 12


def test_evaluation_of_methods_with_dependent_tasks_stays_in_the_calling_thread(tiny_images):
    # MAML over a HyperConv4 swaps the encoder's parameters for each call: concurrent calls
    # would read each other's embeddings (autograd then finds an adapted tensor unused)
    torch.manual_seed(0)
    encoder = GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper="stage", width=4))
    method = MAML(encoder, 3, MAMLConfig(inner_steps=1, adapt="embeddings"))
    assert not method.tasks_are_independent()
    threads: set[int] = set()
    method.register_forward_pre_hook(lambda *_: threads.add(threading.get_ident()))
    serial = evaluate(method, tiny_images, 3, 1, 2, 8, 0, 2, parallel=TaskParallel(1))
    with TaskParallel(2) as pool:
        parallel = evaluate(method, tiny_images, 3, 1, 2, 8, 0, 2, parallel=pool)
    assert threads == {threading.get_ident()}
    assert parallel.task_accuracies == serial.task_accuracies


def test_methods_with_running_statistics_stay_serial():
    torch.manual_seed(0)
    method = MAML(Conv4(1, 16, width=8, bn="eval"), 3, MAMLConfig(inner_steps=1)).double()
    assert not method.tasks_are_independent()
    assert build("maml", inner_steps=1).tasks_are_independent()
    before = method.net.encoder.norms[0].running_mean.clone()
    with TaskParallel(2) as pool:
        meta_step(method, torch.optim.SGD(method.parameters(), lr=0.0), random_batch().to("cpu"),
                  pool)  # fmt: skip
    assert not torch.equal(method.net.encoder.norms[0].running_mean, before)


def test_pool_runs_ops_single_threaded_and_restores_the_count():
    before = torch.get_num_threads()
    with TaskParallel(2) as pool:
        assert torch.get_num_threads() == 1
        seen = list(pool.map(lambda i: (i, torch.get_num_threads()), range(7)))
    assert seen == [(i, 1) for i in range(7)]  # in order, one thread in each worker
    assert torch.get_num_threads() == before


def test_worker_errors_reach_the_caller():
    def fail(i: int) -> int:
        if i == 3:
            raise ValueError("task 3 is bad")
        return i

    with TaskParallel(2) as pool, pytest.raises(ValueError, match="task 3"):
        list(pool.map(fail, range(6)))
    with pytest.raises(ValueError, match="workers"):
        TaskParallel(0)


def test_split_keeps_every_task_once():
    batch = random_batch()
    parts = batch.split(2)
    assert [p.n_tasks for p in parts] == [2, 1]
    assert torch.equal(torch.cat([p.query_x for p in parts]), batch.query_x)
    assert [p.n_tasks for p in batch.split(5)] == [1, 1, 1]
