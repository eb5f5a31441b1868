"""Task parallelism: worker threads give the serial results (meta-gradients to 1e-5, evaluation
accuracies exactly), restore the thread count, and keep methods with running statistics serial."""

from __future__ import annotations

import threading

import pytest
import torch

from hypermaml.config import MAMLConfig
from hypermaml.data import TaskShape
from hypermaml.engine.parallel import TaskParallel
from hypermaml.engine.replicas import _replicas, thread_replica
from hypermaml.evaluation import evaluate
from hypermaml.methods import MAML, HyperMAML
from hypermaml.models import Conv4
from hypermaml.models.conv4net import Conv4Net
from hypermaml.models.grouped import GroupedEncoder
from hypermaml.training import meta_step
from tests.methods.test_batching import N_WAY, build, random_batch

CASES = [
    ("hypermaml", {"warmup_epochs": 0, "switch_epochs": 0}),
    ("hypermaml", {"warmup_epochs": 1, "switch_epochs": 0}),  # MAML steps on the head
    ("maml", {"inner_steps": 2, "first_order": False}),
    ("protonet", {}),
]


def _step_grads(method, batch, parallel, tasks_per_pass=None) -> dict[str, torch.Tensor]:
    """Gradients a meta_step applied (SGD with lr 1 and no momentum: weight change = -grad)."""
    before = {n: p.detach().clone() for n, p in method.named_parameters()}
    optimizer = torch.optim.SGD(method.parameters(), lr=1.0)
    meta_step(method, optimizer, batch, parallel, tasks_per_pass)
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


@pytest.mark.parametrize(("kind", "cfg"), CASES)
@pytest.mark.parametrize("workers", [1, 2])
def test_passes_of_one_task_give_the_whole_batch_gradient(kind, cfg, workers):
    """``tasks_per_pass=1``: every task its own forward and backward pass, gradients summed."""
    batch = random_batch()  # 3 tasks
    whole = _step_grads(build(kind, **cfg), batch, None)
    method, sizes = build(kind, **cfg), []
    meta_loss = method.meta_loss
    method.meta_loss = lambda part: (sizes.append(part.n_tasks), meta_loss(part))[1]
    with TaskParallel(workers) as pool:
        passes = _step_grads(method, batch, pool, tasks_per_pass=1)
    assert sorted(sizes) == [1, 1, 1]
    assert any(g.abs().max() > 0 for g in whole.values())
    for name, grad in whole.items():
        torch.testing.assert_close(passes[name], grad, rtol=1e-5, atol=1e-8, msg=name)


def test_parallel_evaluation_gives_the_serial_accuracies(tiny_images):
    torch.manual_seed(0)
    method = HyperMAML(Conv4(1, 16, width=8), 3, build("hypermaml").cfg)
    args = (method, tiny_images, TaskShape(3, 1, 2), 12, 0, 2)  # 12 tasks in batches of 2
    serial = evaluate(*args, parallel=TaskParallel(1))
    with TaskParallel(2) as pool:
        parallel = evaluate(*args, parallel=pool)
    assert parallel.task_accuracies == serial.task_accuracies
    assert len(parallel.task_accuracies) == 12


def _hyper_maml() -> MAML:
    """MAML over a HyperConv4 (variant 1) adapting the layer embeddings: its encoder has no
    params argument, so each call swaps the adapted embeddings into a module."""
    torch.manual_seed(0)
    encoder = GroupedEncoder(Conv4Net(1, 0, image_size=16, hyper="stage", width=4))
    return MAML(encoder, N_WAY, MAMLConfig(inner_steps=2, adapt="embeddings")).double()


def test_maml_over_a_hyper_encoder_runs_tasks_in_parallel_with_the_serial_gradients():
    # each worker swaps parameters in its own replica of the encoder, never in the shared one
    method = _hyper_maml()
    assert method.tasks_are_independent()
    batch = random_batch()  # 3 tasks: split 2 + 1 over two workers
    serial = _step_grads(method, batch, None)
    with TaskParallel(2) as pool:
        parallel = _step_grads(_hyper_maml(), batch, pool)
    assert serial["encoder.net.hypernets.stage1.weight"].abs().max() > 0  # the outer loop
    for name, grad in serial.items():
        torch.testing.assert_close(parallel[name], grad, rtol=1e-7, atol=1e-12, msg=name)


def test_parallel_evaluation_of_maml_over_a_hyper_encoder_gives_the_serial_accuracies(
    tiny_images,
):
    method = _hyper_maml().float()
    serial = evaluate(method, tiny_images, TaskShape(3, 1, 2), 8, 0, 2, parallel=TaskParallel(1))
    threads: set[int] = set()
    method.register_forward_pre_hook(lambda *_: threads.add(threading.get_ident()))
    with TaskParallel(2) as pool:
        parallel = evaluate(method, tiny_images, TaskShape(3, 1, 2), 8, 0, 2, parallel=pool)
    assert threading.get_ident() not in threads and len(threads) == 2
    assert parallel.task_accuracies == serial.task_accuracies


def test_evaluation_of_methods_with_dependent_tasks_stays_in_the_calling_thread(tiny_images):
    # running statistics make tasks dependent (every call may update them)
    torch.manual_seed(0)
    method = MAML(Conv4(1, 16, width=8, bn="eval"), 3, MAMLConfig(inner_steps=1))
    assert not method.tasks_are_independent()
    threads: set[int] = set()
    method.register_forward_pre_hook(lambda *_: threads.add(threading.get_ident()))
    serial = evaluate(method, tiny_images, TaskShape(3, 1, 2), 8, 0, 2, parallel=TaskParallel(1))
    with TaskParallel(2) as pool:
        parallel = evaluate(method, tiny_images, TaskShape(3, 1, 2), 8, 0, 2, parallel=pool)
    assert threads == {threading.get_ident()}
    assert parallel.task_accuracies == serial.task_accuracies


def test_methods_with_running_statistics_stay_serial():
    torch.manual_seed(0)
    method = MAML(Conv4(1, 16, width=8, bn="eval"), 3, MAMLConfig(inner_steps=1)).double()
    assert not method.tasks_are_independent()
    assert build("maml", inner_steps=1).tasks_are_independent()
    before = method.encoder.norms[0].running_mean.clone()
    with TaskParallel(2) as pool:
        meta_step(method, torch.optim.SGD(method.parameters(), lr=0.0), random_batch().to("cpu"),
                  pool)  # fmt: skip
    assert not torch.equal(method.encoder.norms[0].running_mean, before)


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


def test_a_thread_replica_shares_the_tensors_and_follows_the_module():
    net = Conv4Net(1, 0, image_size=16, hyper="stage", width=4)
    replica = thread_replica(net)
    assert replica is not net and replica.convs[1] is not net.convs[1]
    assert all(a is b for a, b in zip(net.parameters(), replica.parameters(), strict=True))
    assert replica.convs[2].hypernet is replica.hypernets["stage1"]  # sharing kept in the copy
    assert thread_replica(net) is replica  # cached per thread
    net.eval()
    assert not any(m.training for m in thread_replica(net).modules())
    swapped = {"convs.1.embedding": torch.zeros_like(net.convs[1].embedding)}
    x = torch.rand(2, 1, 16, 16)
    torch.func.functional_call(replica, swapped, (x,))  # a swap inside the replica ...
    assert net.convs[1].embedding.abs().sum() > 0  # ... leaves the module alone
    other: list[torch.nn.Module] = []
    worker = threading.Thread(target=lambda: other.append(thread_replica(net)))
    worker.start()
    worker.join()
    assert other[0] is not replica  # each thread has its own
    net.convs[1].embedding = torch.nn.Parameter(net.convs[1].embedding.detach().clone())
    assert thread_replica(net).convs[1].embedding is net.convs[1].embedding  # rebuilt
    assert set(_replicas[net]) == {threading.get_ident()}  # the ended thread's replica dropped
