"""Per-thread replicas of a module, so that ``functional_call`` may run in task threads.

``torch.func.functional_call(module, params, args)`` swaps ``params`` into ``module``'s attributes
for the duration of the call, so two threads calling it on one module see each other's tensors.
A replica is a copy of the module tree that holds the very same parameter and buffer tensors
(nothing is copied but the module objects), so swapping inside one thread's replica leaves the
module and every other thread alone, while optimiser steps and ``load_state_dict`` (both in
place) reach every replica at once. Each call re-syncs the train/eval flags and rebuilds the
replica if the module's tensors were replaced (``module.to`` with tensor swapping, say); the
replicas of threads that have ended are dropped when another is built.
"""

from __future__ import annotations

import copy
import threading
import weakref
from itertools import chain

from torch import nn

_lock = threading.Lock()
_replicas: weakref.WeakKeyDictionary[nn.Module, dict[int, tuple[tuple[int, ...], nn.Module]]] = (
    weakref.WeakKeyDictionary()
)


def thread_replica(module: nn.Module) -> nn.Module:
    """The calling thread's replica of ``module``: the same tensors, its own module objects."""
    tensors = list(chain(module.parameters(), module.buffers()))
    ids = tuple(map(id, tensors))
    thread = threading.get_ident()
    with _lock:
        cached = _replicas.setdefault(module, {}).get(thread)
    if cached is None or cached[0] != ids:
        cached = (ids, copy.deepcopy(module, memo=dict(zip(ids, tensors))))
        with _lock:
            per_thread = _replicas[module]
            alive = {t.ident for t in threading.enumerate()}
            for gone in [t for t in per_thread if t not in alive]:  # threads of closed pools
                del per_thread[gone]
            per_thread[thread] = cached
    replica = cached[1]
    for original, copied in zip(module.modules(), replica.modules()):
        copied.training = original.training
    return replica
