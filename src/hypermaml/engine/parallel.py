"""Task parallelism on the CPU: whole tasks in worker threads, one core each.

A few-shot task is small (a 5-way 1-shot omniglot task is 80 images of 28x28), so splitting
each operation over the cores, as PyTorch's intra-op threads do, leaves cores waiting at the end
of every operation. Tasks are independent: ``TaskParallel`` runs whole tasks in W worker
threads and every operation on one core. PyTorch releases the GIL inside its kernels, so the
workers compute concurrently (``engine.kernels`` picks kernels without global switches).

Off the CPU, or with one worker, everything runs in the calling thread.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


class TaskParallel:
    """A pool of ``workers`` threads for independent task work; use as a context manager.

    While it is open the process runs PyTorch operations single-threaded (the workers supply
    the parallelism); the thread count is restored on exit.
    """

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._threads_before = 0

    @classmethod
    def for_device(cls, device: torch.device, threads: int | None = None) -> TaskParallel:
        """``threads`` workers (default: PyTorch's thread count) on the CPU, one elsewhere."""
        if device.type != "cpu":
            return cls(1)
        return cls(threads or torch.get_num_threads())

    def __enter__(self) -> TaskParallel:
        if self.workers > 1:
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
            self._pool = ThreadPoolExecutor(
                self.workers, "task", initializer=torch.set_num_threads, initargs=(1,)
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
            torch.set_num_threads(self._threads_before)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """``fn`` over ``items``, results in order. Items are drawn lazily in the calling thread
        (at most two per worker ahead of the results), so producing them overlaps the work."""
        if self._pool is None:
            yield from map(fn, items)
            return
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(self._pool.submit(fn, item))
            if len(pending) >= 2 * self.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
