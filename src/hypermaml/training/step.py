"""The outer step of meta-training: one batch of tasks, its meta-gradient, one optimiser step."""

from __future__ import annotations

import math

import torch

from ..data import TaskBatch
from ..engine.parallel import TaskParallel
from ..methods import Method


def meta_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: TaskBatch,
    parallel: TaskParallel | None = None,
    tasks_per_pass: int | None = None,
) -> tuple[float, float]:
    """One outer step on a batch of tasks: (mean query loss, query accuracy in [0, 1]).

    With a ``parallel`` pool of W > 1 workers (and a method whose tasks are independent), the
    batch is split into W parts whose meta-gradients are computed concurrently and summed,
    weighted by their share of the tasks: the serial step's gradient up to float rounding.
    ``tasks_per_pass`` bounds the tasks of one forward and backward pass (each worker then
    accumulates the gradients of its part pass by pass), which bounds the activation memory:
    at most W * ``tasks_per_pass`` tasks are held at once. None: a worker's whole part at once.
    A non-finite loss leaves the weights untouched; the caller decides what to do about it.
    """
    workers = parallel.workers if parallel is not None else 1
    split = workers > 1 or (tasks_per_pass or batch.n_tasks) < batch.n_tasks
    if split and batch.n_tasks > 1 and method.tasks_are_independent():
        return _split_step(method, optimizer, batch, parallel, tasks_per_pass)
    loss, logits = method.meta_loss(batch)
    value = loss.item()
    if not math.isfinite(value):
        return value, 0.0
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return value, (logits.argmax(-1) == batch.query_y).float().mean().item()


def _split_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: TaskBatch,
    parallel: TaskParallel | None,
    tasks_per_pass: int | None,
) -> tuple[float, float]:
    """``meta_step`` over parts of the batch (one per worker, each in passes of at most
    ``tasks_per_pass`` tasks), their gradients summed with weights of their share of tasks."""
    workers = parallel.workers if parallel is not None else 1
    params = [p for p in method.parameters() if p.requires_grad]

    def pass_step(part: TaskBatch) -> tuple[float, float, tuple]:
        share = part.n_tasks / batch.n_tasks
        loss, logits = method.meta_loss(part)
        grads = torch.autograd.grad(loss * share, params, allow_unused=True)
        correct = (logits.argmax(-1) == part.query_y).float().mean().item()
        return loss.item() * share, correct * share, grads

    def part_step(part: TaskBatch) -> tuple[float, float, tuple]:
        if not tasks_per_pass or part.n_tasks <= tasks_per_pass:
            return pass_step(part)
        passes = [pass_step(p) for p in part.split(-(-part.n_tasks // tasks_per_pass))]
        grads = tuple(
            None if all(r[2][i] is None for r in passes)
            else sum(r[2][i] for r in passes if r[2][i] is not None)
            for i in range(len(params))
        )  # fmt: skip
        return sum(r[0] for r in passes), sum(r[1] for r in passes), grads

    parts = batch.split(workers)
    if parallel is None or workers == 1:
        results = [part_step(p) for p in parts]
    else:
        results = list(parallel.map(part_step, parts))
    value = sum(r[0] for r in results)
    if not math.isfinite(value):
        return value, 0.0
    for i, p in enumerate(params):
        grads = [r[2][i] for r in results if r[2][i] is not None]
        p.grad = torch.stack(grads).sum(0) if grads else None
    optimizer.step()
    return value, sum(r[1] for r in results)
