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
) -> tuple[float, float]:
    """One outer step on a batch of tasks: (mean query loss, query accuracy in [0, 1]).

    With a ``parallel`` pool of W > 1 workers (and a method whose tasks are independent), the
    batch is split into W parts whose meta-gradients are computed concurrently and summed,
    weighted by their share of the tasks: the serial step's gradient up to float rounding.
    A non-finite loss leaves the weights untouched; the caller decides what to do about it.
    """
    workers = parallel.workers if parallel is not None else 1
    if workers == 1 or batch.n_tasks == 1 or not method.tasks_are_independent():
        loss, logits = method.meta_loss(batch)
        value = loss.item()
        if not math.isfinite(value):
            return value, 0.0
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return value, (logits.argmax(-1) == batch.query_y).float().mean().item()

    params = [p for p in method.parameters() if p.requires_grad]

    def part_step(part: TaskBatch) -> tuple[float, float, tuple]:
        share = part.n_tasks / batch.n_tasks
        loss, logits = method.meta_loss(part)
        grads = torch.autograd.grad(loss * share, params, allow_unused=True)
        correct = (logits.argmax(-1) == part.query_y).float().mean().item()
        return loss.item() * share, correct * share, grads

    results = list(parallel.map(part_step, batch.split(workers)))
    value = sum(r[0] for r in results)
    if not math.isfinite(value):
        return value, 0.0
    for i, p in enumerate(params):
        grads = [r[2][i] for r in results if r[2][i] is not None]
        p.grad = torch.stack(grads).sum(0) if grads else None
    optimizer.step()
    return value, sum(r[1] for r in results)
