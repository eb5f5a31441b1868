"""The few-shot test protocol: accuracy over tasks drawn from a seed, with a 95% interval.

Tasks depend only on the data, the task shape (N, K, Q) and the seed, so every method is scored
on the same tasks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..data import ClassImages, EpisodeSampler, TaskBatch, TaskShape
from ..engine.distributed import World, current_world
from ..engine.parallel import TaskParallel
from ..engine.precision import Precision
from ..methods.base import Method
from .stats import mean_ci95


@dataclass
class EvalResult:
    accuracy: float
    """Mean query accuracy over the tasks, in percent."""
    ci95: float
    """Half-width of the 95% confidence interval, in percent."""
    n_tasks: int
    seconds_per_task: float
    """Wall time of adaptation and prediction per task: sampling excluded with one worker,
    overlapped with the workers' computation with several."""
    task_accuracies: list[float]


def eval_batches(
    method: Method, data: ClassImages, shape: TaskShape, n_tasks: int, seed: int, batch_size: int
) -> Iterator[TaskBatch]:
    """The ``n_tasks`` tasks of ``shape`` drawn from ``seed``, in batches of ``batch_size`` on
    the method's device, with the method in eval mode (test-time adaptation) while they are
    consumed; its mode is restored after the last batch, or when the caller stops early."""
    method.check_n_way(shape.n_way)
    device = next(method.parameters()).device
    was_training = method.training
    method.eval()
    try:
        for batch in EpisodeSampler(data, shape, seed).batches(n_tasks, batch_size):
            yield batch.to(device)
    finally:
        method.train(was_training)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    method: Method,
    data: ClassImages,
    shape: TaskShape,
    n_tasks: int = 600,
    seed: int = 0,
    batch_size: int = 8,
    parallel: TaskParallel | None = None,
    world: World | None = None,
    precision: Precision | None = None,
) -> EvalResult:
    """Score ``method`` on ``n_tasks`` tasks of ``shape`` from ``data``, drawn from ``seed``.

    ``parallel``: an open pool whose workers score batches of ``batch_size`` tasks concurrently
    (default: one opened for the method's device, PyTorch's thread count on the CPU). A method
    whose tasks are not independent (``Method.tasks_are_independent``, as in ``meta_step``) is
    scored in the calling thread.

    ``world``: several processes share the batches (batch j on rank j mod size) and sum their
    per-task accuracies, so every rank returns exactly the single-process result (the same
    tasks, each scored alone); default: the processes torchrun started, if any (``SINGLE`` for
    one). ``precision``: the arithmetic of the forward passes (default fp32).
    """
    method.check_n_way(shape.n_way)
    world = current_world() if world is None else world
    device = next(method.parameters()).device
    sampler = EpisodeSampler(data, shape, seed)
    if parallel is None:
        with TaskParallel.for_device(device) as pool:
            return evaluate(method, data, shape, n_tasks, seed, batch_size, pool, world, precision)
    precision = precision or Precision("fp32", device)

    def score(batch: TaskBatch) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        with torch.no_grad(), precision.autocast():  # both per thread: set in the worker's
            logits = method(batch.to(device))
        _synchronize(device)
        correct = (logits.argmax(-1) == batch.query_y.to(device)).float().mean(1)
        return 100.0 * correct, time.perf_counter() - start

    was_training = method.training
    method.eval()
    try:
        _synchronize(device)
        start = time.perf_counter()
        mapper = parallel.map if method.tasks_are_independent() else map
        batches = sampler.batches(n_tasks, batch_size, shard=(world.rank, world.size))
        results = list(mapper(score, batches))
        wall = time.perf_counter() - start
    finally:
        method.train(was_training)
    # one worker: the batches' own times (sampling excluded); several: the wall time
    elapsed = sum(t for _, t in results) if parallel.workers == 1 else wall
    accuracies = _gather(results, n_tasks, batch_size, world, device)
    mean, ci = mean_ci95(accuracies)
    return EvalResult(mean, ci, len(accuracies), world.max(elapsed) / len(accuracies), accuracies)


def _gather(
    results: list[tuple[torch.Tensor, float]],
    n_tasks: int,
    batch_size: int,
    world: World,
    device: torch.device,
) -> list[float]:
    """Every task's accuracy in task order, from this rank's batches (j = rank, rank + size,
    ...) and, summed in, the other ranks' (each task is scored on one rank, zeros elsewhere)."""
    if not world.distributed:
        return torch.cat([acc for acc, _ in results]).tolist() if results else []
    every = torch.zeros(n_tasks, dtype=torch.float64, device=world.collective_device)
    for k, (acc, _) in enumerate(results):
        start = (world.rank + k * world.size) * batch_size
        every[start : start + len(acc)] = acc.to(every.device)
    world.all_reduce_sum_([every])
    return every.tolist()
