"""The outer step of meta-training: one batch of tasks, its meta-gradient, one optimiser step."""

from __future__ import annotations

import math

import torch

from ..data import TaskBatch
from ..engine.distributed import SINGLE, World
from ..engine.parallel import TaskParallel
from ..engine.precision import Precision
from ..methods import Method


def meta_step(
    method: Method,
    optimizer: torch.optim.Optimizer,
    batch: TaskBatch,
    parallel: TaskParallel | None = None,
    tasks_per_pass: int | None = None,
    precision: Precision | None = None,
    world: World = SINGLE,
    world_tasks: int | None = None,
    check_finite: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One outer step: (mean query loss, query accuracy in [0, 1]) of the whole meta-batch, as
    0-dim tensors on the batch's device.

    With a ``parallel`` pool of W > 1 workers (and a method whose tasks are independent), the
    batch is split into W parts whose meta-gradients are computed concurrently and summed,
    weighted by their share of the tasks: the serial step's gradient up to float rounding.
    ``tasks_per_pass`` bounds the tasks of one forward and backward pass (each worker then
    accumulates the gradients of its part pass by pass), which bounds the activation memory:
    at most W * ``tasks_per_pass`` tasks are held at once. None: a worker's whole part at once.

    ``world``: ``batch`` is this rank's share (``World.share``) of a meta-batch of
    ``world_tasks`` tasks over ``world.size`` ranks; each rank weights its gradient by its share
    of the tasks and the ranks' gradients are summed (``World.all_reduce_sum_``), so every rank
    takes the step of the whole meta-batch, the single-process step up to float rounding.

    ``check_finite``: a non-finite loss leaves the weights untouched (the caller decides what
    to do about it); this reads the loss on the host, so a CUDA loop passes False and checks
    its losses once per epoch instead.
    """
    precision = precision or Precision("fp32", batch.support_x.device)
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    loss, accuracy = _gradients(method, batch, params, parallel, tasks_per_pass, precision)
    if world.distributed:
        share = batch.n_tasks / (world_tasks or batch.n_tasks * world.size)
        loss, accuracy = world.sum_gradients_(params, share, torch.stack([loss, accuracy]))
    if check_finite and not math.isfinite(loss.item()):
        return loss, torch.zeros_like(accuracy)
    precision.step(optimizer)
    return loss, accuracy


def _gradients(
    method: Method,
    batch: TaskBatch,
    params: list[torch.nn.Parameter],
    parallel: TaskParallel | None,
    tasks_per_pass: int | None,
    precision: Precision,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Set ``p.grad`` to the meta-gradient of ``batch``'s mean loss (times the fp16 scale):
    one backward call, or the split step's weighted parts. Returns (loss, accuracy)."""
    workers = parallel.workers if parallel is not None else 1
    split = workers > 1 or (tasks_per_pass or batch.n_tasks) < batch.n_tasks
    if split and batch.n_tasks > 1 and method.tasks_are_independent():
        return _split_gradients(method, batch, params, parallel, tasks_per_pass, precision)
    with precision.autocast():
        loss, logits = method.meta_loss(batch)
    precision.scale(loss).backward()
    return loss.detach(), (logits.argmax(-1) == batch.query_y).float().mean()


def _split_gradients(
    method: Method,
    batch: TaskBatch,
    params: list[torch.nn.Parameter],
    parallel: TaskParallel | None,
    tasks_per_pass: int | None,
    precision: Precision,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_gradients`` over parts of the batch (one per worker, each in passes of at most
    ``tasks_per_pass`` tasks), their gradients summed with weights of their share of tasks."""
    workers = parallel.workers if parallel is not None else 1

    def pass_step(part: TaskBatch) -> tuple[torch.Tensor, torch.Tensor, tuple]:
        share = part.n_tasks / batch.n_tasks
        with precision.autocast():  # autocast is per thread: entered in the worker's
            loss, logits = method.meta_loss(part)
        grads = torch.autograd.grad(precision.scale(loss * share), params, allow_unused=True)
        correct = (logits.argmax(-1) == part.query_y).float().mean()
        return loss.detach() * share, correct * share, grads

    def part_step(part: TaskBatch) -> tuple[torch.Tensor, torch.Tensor, tuple]:
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
    for i, p in enumerate(params):
        grads = [r[2][i] for r in results if r[2][i] is not None]
        p.grad = torch.stack(grads).sum(0) if grads else None
    return sum(r[0] for r in results), sum(r[1] for r in results)
