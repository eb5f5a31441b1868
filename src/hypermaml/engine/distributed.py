"""Several processes (``torchrun``): a world of ranks that share every meta-batch and every
evaluation, with the meta-gradients summed by hand.

PyTorch's ``DistributedDataParallel`` does not fit meta-learning: it does not support double
backward (second-order MAML), and ``torch.func.functional_call`` (MAML's adapted weights)
bypasses its forward, so its reducer is never prepared. The functional core therefore stays
outside DDP: each rank computes the meta-gradient of its share of the tasks with one backward
call, weighted by its share, and ``all_reduce_sum_`` adds the gradients of all ranks in a few
flat buckets. The sum is the single-process gradient of the whole meta-batch (the meta-loss is
the mean over its tasks, whatever the world size).

NCCL carries the collectives on GPUs, gloo on CPUs. Nothing here knows a method: the training
loop and the evaluation call ``World``'s few operations, which are no-ops in a world of one.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import ConfigError, HypermamlError

T = TypeVar("T")
BUCKET_BYTES = 25 * 2**20
"""Largest flat buffer of one all-reduce (DDP's default bucket size)."""


class RankError(HypermamlError):
    """An error raised on the main rank, repeated on the others (same message)."""


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` processes: ``rank`` (0 is the main one, which alone
    writes checkpoints and logs) and ``local_rank`` (its index on this machine: its GPU)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, n: int) -> range:
        """This rank's part of ``n`` items (tasks of a meta-batch): consecutive, sizes differing
        by at most one, rank order. Every rank gets one or more when ``n >= size``."""
        return range(self.rank * n // self.size, (self.rank + 1) * n // self.size)

    @torch.no_grad()
    def all_reduce_sum_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Replace each tensor by its sum over the ranks, in place, through flat buckets of at
        most ``BUCKET_BYTES`` (one collective per bucket and dtype, the same on every rank)."""
        if not self.distributed:
            return
        for bucket in _buckets(list(tensors)):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            offset = 0
            for t in bucket:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    @torch.no_grad()
    def sum_gradients_(
        self, params: list[torch.nn.Parameter], scale: float, extra: torch.Tensor
    ) -> torch.Tensor:
        """Replace each ``p.grad`` by the sum over the ranks of ``scale * p.grad``, and return
        the sum of ``scale * extra`` (a small float tensor riding along: a loss, an accuracy):
        one set of collectives, the same on every rank. A parameter without a gradient joins
        them as zeros and keeps none: every rank runs the same model in the same phase (the
        hypernetwork during MAML's warm-up has no gradient anywhere)."""
        grads = [p.grad.mul_(scale) if p.grad is not None else torch.zeros_like(p) for p in params]
        extra = extra.float() * scale
        self.all_reduce_sum_([*grads, extra])
        for p, g in zip(params, grads):
            if p.grad is not None:
                p.grad = g
        return extra

    @torch.no_grad()
    def broadcast_(self, tensors: Iterable[torch.Tensor]) -> None:
        """Give every rank the main rank's values of ``tensors``, in place."""
        if not self.distributed:
            return
        for bucket in _buckets(list(tensors)):
            flat = torch.cat([t.reshape(-1) for t in bucket])
            dist.broadcast(flat, src=0)
            offset = 0
            for t in bucket:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()

    def broadcast_state_(self, module: torch.nn.Module, *stateful: object) -> None:
        """Give every rank the main rank's weights and buffers of ``module`` and the state of
        each of ``stateful`` (optimisers, schedules, scalers: whatever has ``state_dict`` and
        ``load_state_dict``; None is passed over), so that every rank starts alike."""
        if not self.distributed:
            return
        self.broadcast_([*module.parameters(), *module.buffers()])
        present = [s for s in stateful if s is not None]
        states = self.broadcast_object([s.state_dict() for s in present])
        if not self.is_main:
            for s, state in zip(present, states):
                s.load_state_dict(state)

    def broadcast_object(self, value: T) -> T:
        """The main rank's ``value`` (any picklable object), on every rank."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def on_main(self, work: Callable[[], T]) -> T | None:
        """Run ``work`` on the main rank alone and return its result there (None elsewhere).
        If it raises, the other ranks raise a ``RankError`` with the same message instead of
        waiting for collectives the main rank will never join."""
        if not self.distributed:
            return work()
        result, failure = None, None
        if self.is_main:
            try:
                result = work()
            except Exception as exc:
                failure = exc
        message = self.broadcast_object(None if failure is None else str(failure))
        if failure is not None:
            raise failure
        if message is not None:
            raise RankError(message)
        return result

    def max(self, value: float) -> float:
        """The largest ``value`` over the ranks (a wall time, say)."""
        if not self.distributed:
            return value
        box = torch.tensor([value], dtype=torch.float64, device=self.collective_device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return float(box.item())

    @property
    def collective_device(self) -> torch.device:
        """Where tensors of collectives live: this rank's GPU under NCCL, else the CPU."""
        if self.distributed and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


SINGLE = World()
"""The world of one process (no launcher)."""


def _buckets(tensors: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """``tensors`` in consecutive groups of one dtype and device and at most ``BUCKET_BYTES``
    (a larger tensor alone); the grouping depends only on the shapes, so it is the same on
    every rank."""
    groups: list[list[torch.Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        last = groups[-1] if groups else None
        fits = last is not None and size + nbytes <= BUCKET_BYTES
        if fits and last[0].dtype == t.dtype and last[0].device == t.device:
            last.append(t)
            size += nbytes
        else:
            groups.append([t])
            size = nbytes
    return groups


def launched_world_size() -> int:
    """The number of processes a launcher (torchrun) started, 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def current_world() -> World:
    """The world this process belongs to: ``SINGLE`` unless ``init_world`` joined one."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return World(dist.get_rank(), dist.get_world_size(), local)


BACKEND_VARIABLE = "HYPERMAML_DIST_BACKEND"
"""Environment variable naming the collectives' backend (``nccl`` or ``gloo``) instead of the
default: gloo lets several processes share one GPU (NCCL refuses that), as in the GPU check."""


def init_world(device: str | None) -> World:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``): NCCL when the run computes on CUDA,
    gloo otherwise (or ``$HYPERMAML_DIST_BACKEND``). Each rank then computes on its own GPU,
    ``cuda:LOCAL_RANK`` (under gloo, ranks beyond the GPU count share them in turn). Without a
    launcher this returns ``SINGLE`` and does nothing."""
    if launched_world_size() <= 1:
        return SINGLE
    if current_world().distributed:
        return current_world()
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; launch one process")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = device is not None and device.startswith("cuda")
    use_cuda = wants_cuda or (device in (None, "auto") and torch.cuda.is_available())
    backend = os.environ.get(BACKEND_VARIABLE) or ("nccl" if use_cuda else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ConfigError(f"${BACKEND_VARIABLE}={backend}: use nccl or gloo")
    if use_cuda:
        count = torch.cuda.device_count()
        if backend == "nccl" and local >= count:
            raise ConfigError(
                f"local rank {local} has no GPU of its own: this machine has {count}; launch at "
                f"most that many processes per node (--nproc-per-node), or share the GPUs over "
                f"gloo ({BACKEND_VARIABLE}=gloo)"
            )
        torch.cuda.set_device(local % count)
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return current_world()


def close_world() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def world_device(name: str | None, world: World) -> str | None:
    """The device name a rank computes on: ``cuda`` (or ``auto`` with CUDA) becomes this rank's
    GPU (``init_world`` chose it); anything else is kept."""
    if not world.distributed or not torch.cuda.is_available():
        return name  # without CUDA, pick_device says what to do about "cuda"
    if name in ("cuda", "auto", None):
        return f"cuda:{torch.cuda.current_device()}"
    return name
