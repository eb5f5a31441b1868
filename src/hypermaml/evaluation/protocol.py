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
from ..engine.parallel import TaskParallel
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
) -> EvalResult:
    """Score ``method`` on ``n_tasks`` tasks of ``shape`` from ``data``, drawn from ``seed``.

    ``parallel``: an open pool whose workers score batches of ``batch_size`` tasks concurrently
    (default: one opened for the method's device, PyTorch's thread count on the CPU). A method
    whose tasks are not independent (``Method.tasks_are_independent``, as in ``meta_step``) is
    scored in the calling thread.
    """
    method.check_n_way(shape.n_way)
    device = next(method.parameters()).device
    sampler = EpisodeSampler(data, shape, seed)
    if parallel is None:
        with TaskParallel.for_device(device) as pool:
            return evaluate(method, data, shape, n_tasks, seed, batch_size, pool)

    def score(batch: TaskBatch) -> tuple[list[float], float]:
        start = time.perf_counter()
        with torch.no_grad():  # grad mode is per thread: set it in the worker's
            logits = method(batch.to(device))
        _synchronize(device)
        correct = (logits.argmax(-1) == batch.query_y.to(device)).float().mean(1)
        return (100.0 * correct).tolist(), time.perf_counter() - start

    was_training = method.training
    method.eval()
    accuracies: list[float] = []
    try:
        _synchronize(device)
        start = time.perf_counter()
        mapper = parallel.map if method.tasks_are_independent() else map
        results = list(mapper(score, sampler.batches(n_tasks, batch_size)))
        wall = time.perf_counter() - start
    finally:
        method.train(was_training)
    for batch_accuracies, _ in results:
        accuracies.extend(batch_accuracies)
    # one worker: the batches' own times (sampling excluded); several: the wall time
    elapsed = sum(t for _, t in results) if parallel.workers == 1 else wall
    mean, ci = mean_ci95(accuracies)
    return EvalResult(mean, ci, len(accuracies), elapsed / len(accuracies), accuracies)
