"""Portable adapters: ONNX graphs of a whole adaptation (support set in, query logits out) and of
an already adapted classifier (query images in, logits out).

- ``export_adapter``: HyperMAML's and ProtoNet's adaptation is a forward pass, so the graph
  builds the task's classifier itself: inputs ``support_images`` [S, C, H, W] (float, already
  preprocessed), ``support_labels`` [S] (int64, 0..N-1), ``query_images`` [Q, C, H, W]; output
  ``logits`` [Q, N]. S and Q are free. MAML adapts by gradient steps, which a graph does not run.
- ``export_adapted``: the classifier of an adapted task (``AdaptedTask.export_onnx``; every
  method, MAML included), its task parameters and support set held as constants:
  ``query_images`` [Q, C, H, W] in, ``logits`` [Q, N] out, Q free.

The query statistics follow ``inference/task.py`` (``"support"``: each query normalised with the
support set; ``"queries"``: the queries of one call together, as the benchmarks do). The
encoders run their portable path under export (``engine.kernels.is_exporting``). Each file
carries its class names, input transform and statistics rule as metadata (``hypermaml.*``).
Needs ``hypermaml[onnx]`` (onnx, onnxscript; onnxruntime to run the graphs). Every export is
run once on other image counts than it was traced with: the Conv4 encoders give graphs of free
sizes; the residual encoders keep a traced size, which is refused with that reason.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.preprocess import Preprocess
from ..extras import require
from ..methods.base import Method, TaskParams, one_hot_class_means
from ..methods.checkpoint import FewShotCheckpoint
from ..methods.maml import MAML
from ..methods.protonet import ProtoNet
from .groups import with_support

INPUTS = ("support_images", "support_labels", "query_images")


def _score(method: Method, support: torch.Tensor, queries: torch.Tensor, params: TaskParams,
           statistics: str) -> torch.Tensor:  # fmt: skip
    """Logits [Q, N] of queries [Q, C, H, W] under task params (leading dimension 1)."""
    q = queries.shape[0]
    groups = queries[None] if statistics == "queries" else with_support(support, queries)
    if isinstance(method, MAML):  # one task's weights over every group, in one pass
        logits = method.logits(groups, method.steps, {k: v[0] for k, v in params.items()})
        return logits[0] if statistics == "queries" else logits[:, -1]
    if statistics == "queries":
        return method.predict(groups, params)[0]
    expanded = {k: v.expand(q, *v.shape[1:]) for k, v in params.items()}
    return method.predict(groups, expanded)[:, -1]


class AdapterGraph(nn.Module):
    """(support images, support labels, query images) -> query logits, for export."""

    def __init__(self, method: Method, n_way: int, statistics: str) -> None:
        super().__init__()
        if isinstance(method, MAML):
            raise ValueError(
                "MAML adapts by gradient steps, which an ONNX graph does not run; adapt in "
                "Python and export the adapted classifier (task.export_onnx, or hypermaml "
                "export-onnx --support DIR)"
            )
        self.method, self.n_way, self.statistics = method, n_way, statistics

    def forward(self, support: torch.Tensor, labels: torch.Tensor, queries: torch.Tensor):
        if isinstance(self.method, ProtoNet):  # N fixed by the graph, not by the labels' max
            embeddings = self.method.encoder(support[None])
            params = {"prototypes": one_hot_class_means(embeddings, labels[None], self.n_way)}
        else:
            params = self.method.adapt(support[None], labels[None])
        return _score(self.method, support, queries, params, self.statistics)


class AdaptedGraph(nn.Module):
    """Query images -> logits of one adapted task, its parameters held as constants."""

    def __init__(self, method: Method, params: TaskParams, support: torch.Tensor,
                 statistics: str) -> None:  # fmt: skip
        super().__init__()
        self.method, self.statistics = method, statistics
        self.names = list(params)
        for i, name in enumerate(self.names):
            self.register_buffer(f"param{i}", params[name].detach().clone())
        self.register_buffer("support", support.detach().clone())

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        params = {n: getattr(self, f"param{i}") for i, n in enumerate(self.names)}
        return _score(self.method, self.support, queries, params, self.statistics)


def _check_free_sizes(model: Any, names: tuple[str, ...], other: tuple[torch.Tensor, ...]) -> None:
    """Run the graph on inputs of other sizes than traced (with onnxruntime, when installed): an
    encoder whose graph kept a traced size fails here, not in the user's runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    try:
        session.run(None, {n: t.numpy() for n, t in zip(names, other)})
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        raise ValueError(
            "the exported graph does not take other numbers of images than it was traced with "
            "(this encoder keeps a traced size; the Conv4 encoders export free sizes): "
            f"{str(exc).splitlines()[0]}"
        ) from exc


def _export(module: nn.Module, example: tuple[torch.Tensor, ...], names: tuple[str, ...],
            dynamic: dict[str, Any], path: Path, metadata: dict[str, Any],
            other: tuple[torch.Tensor, ...]) -> Path:  # fmt: skip
    require("onnxscript", "ONNX export")
    onnx = require("onnx", "ONNX export")

    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, input_names=list(names),
                                    output_names=["logits"], dynamic_shapes=dynamic,
                                    dynamo=True, verbose=False, optimize=True)  # fmt: skip
    model = program.model_proto
    _check_free_sizes(model, names, other)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"hypermaml.{key}", json.dumps(value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)
    return path


def export_adapter(model: FewShotCheckpoint, path: str | Path, statistics: str = "support",
                   n_way: int | None = None) -> Path:  # fmt: skip
    """Write ``model``'s whole adaptation as one ONNX graph (module doc); ``n_way``: the
    classes of a task (a ProtoNet graph may take any; default: the checkpoint's)."""
    method = model.method
    n_way = n_way or method.n_way
    if n_way != method.n_way and not isinstance(method, ProtoNet):
        raise ValueError(f"this {type(method).__name__} classifies {method.n_way} classes; "
                         f"only a ProtoNet adapter can be exported for {n_way}")  # fmt: skip
    graph = AdapterGraph(method, n_way, statistics)
    shape = tuple(model.meta["image_shape"])
    support = torch.rand(2 * n_way, *shape)
    labels = torch.arange(n_way).repeat(2)
    queries = torch.rand(3, *shape)
    s, q = torch.export.Dim("support", min=2), torch.export.Dim("queries", min=1)
    dynamic = {"support": {0: s}, "labels": {0: s}, "queries": {0: q}}
    meta = {"checkpoint": str(model.path), "method": type(method).__name__, "n_way": n_way,
            "statistics": statistics, "preprocess": model.preprocess.to_dict(),
            "inputs": "support_images [S,C,H,W] float, support_labels [S] int64 in 0..N-1, "
                      "query_images [Q,C,H,W] float; images preprocessed"}  # fmt: skip
    other = (torch.rand(3 * n_way, *shape), torch.arange(n_way).repeat(3), torch.rand(5, *shape))
    return _export(graph, (support, labels, queries), INPUTS, dynamic, Path(path), meta, other)


def export_adapted(method: Method, params: TaskParams, support: torch.Tensor,
                   classes: list[Any], preprocess: Preprocess, path: str | Path,
                   statistics: str = "support") -> Path:  # fmt: skip
    """Write a classifier adapted to ``support`` [S, C, H, W] (``params``: its task parameters,
    leading dimension 1) as an ONNX graph (module doc; ``AdaptedTask.export_onnx``)."""
    graph = AdaptedGraph(method, params, support, statistics)
    queries = torch.rand(3, *support.shape[1:])
    dynamic = {"queries": {0: torch.export.Dim("queries", min=1)}}
    meta = {"method": type(method).__name__, "classes": [str(c) for c in classes],
            "statistics": statistics, "preprocess": preprocess.to_dict(),
            "inputs": "query_images [Q,C,H,W] float, preprocessed"}  # fmt: skip
    other = (torch.rand(5, *support.shape[1:]),)
    return _export(graph, (queries,), ("query_images",), dynamic, Path(path), meta, other)
