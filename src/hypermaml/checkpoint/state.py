"""A training state (optimiser, schedule, random generators, ...) as tensors plus plain JSON.

``torch.save`` pickles, and unpickling a file can run any code it names; a run folder someone
hands you must not be able to do that. ``encode`` splits a nested state into a flat mapping of
tensors (written with safetensors) and a JSON tree that refers to them by name; ``decode`` puts
them back. Only plain data is accepted: tensors, numpy arrays, numbers, strings, None, and
lists, tuples, dicts (any scalar keys) and ``collections.Counter`` (the milestones of
``MultiStepLR``) of those. Anything else is refused on writing, so nothing unexpected is ever
stored, and reading builds only these types.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

_TAGS = ("$tensor", "$ndarray", "$tuple", "$dict", "$counter")


def encode(state: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors by name, a JSON-serialisable tree referring to them) for ``state``."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, torch.Tensor):
            name = str(len(tensors))
            tensors[name] = node.detach().cpu().contiguous()
            return {"$tensor": name}
        if isinstance(node, np.ndarray):
            name = str(len(tensors))
            tensors[name] = torch.from_numpy(node.astype(np.int64 if node.dtype.kind in "iub"
                                                         else np.float64))  # fmt: skip
            return {"$ndarray": name, "dtype": node.dtype.str}
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, bool | int | float | str):
            return node
        if isinstance(node, tuple):
            return {"$tuple": [walk(v) for v in node]}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, Counter):
            return {"$counter": [[walk(k), walk(v)] for k, v in node.items()]}
        if isinstance(node, dict):
            if all(isinstance(k, str) and k not in _TAGS for k in node):
                return {k: walk(v) for k, v in node.items()}
            return {"$dict": [[walk(k), walk(v)] for k, v in node.items()]}
        raise TypeError(f"cannot store a {type(node).__name__} in a training state")

    return tensors, walk(state)


def decode(tensors: dict[str, torch.Tensor], tree: Any) -> Any:
    """The state ``encode`` split into ``tensors`` and ``tree``; a ValueError when they do not
    fit each other."""

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "$tensor" in node:
            return tensors[node["$tensor"]]
        if "$ndarray" in node:
            return tensors[node["$ndarray"]].numpy().astype(np.dtype(node["dtype"]))
        if "$tuple" in node:
            return tuple(walk(v) for v in node["$tuple"])
        if "$counter" in node:
            return Counter({_key(walk(k)): walk(v) for k, v in node["$counter"]})
        if "$dict" in node:
            return {_key(walk(k)): walk(v) for k, v in node["$dict"]}
        return {k: walk(v) for k, v in node.items()}

    try:
        return walk(tree)
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"the state's tensors and description do not fit ({exc!r})") from exc


def _key(key: Any) -> Any:
    """A decoded dict key: lists (from JSON) back to hashable tuples."""
    return tuple(key) if isinstance(key, list) else key
