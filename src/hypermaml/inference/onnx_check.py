"""An exported adapter checked against PyTorch on real test tasks, and both timed.

For each task the graph's logits are compared with PyTorch running the same module eagerly on
its portable path (``engine.kernels.portable``: what the graph computes) and on its fast CPU
kernels (what ``evaluate`` runs), and the predicted classes with the fast path's. Latency is the
wall time of one task (adaptation and its queries) in onnxruntime and in eager PyTorch, median
over the tasks, the first ``warmup`` excluded.
"""

from __future__ import annotations

import statistics as stats
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import EpisodeSampler, load_split
from ..engine.kernels import portable
from ..extras import require
from ..methods.checkpoint import FewShotCheckpoint
from .onnx_export import AdapterGraph


@dataclass
class OnnxCheck:
    tasks: int
    max_abs_diff: float
    """Largest |graph - PyTorch portable| over every logit."""
    max_abs_diff_fast: float
    """Largest |graph - PyTorch fast kernels| over every logit."""
    logit_scale: float
    """Largest |logit|: the scale the differences are measured against."""
    same_prediction: float
    """Share of queries whose predicted class is the fast path's."""
    onnx_ms: float
    torch_ms: float
    threads: int

    def lines(self) -> list[str]:
        return [
            f"{self.tasks} tasks: max |onnx - torch| = {self.max_abs_diff:.2e} (portable path), "
            f"{self.max_abs_diff_fast:.2e} (fast kernels), logits up to {self.logit_scale:.1f}; "
            f"same class for {100 * self.same_prediction:.2f}% of queries",
            f"per task ({self.threads} threads): onnxruntime {self.onnx_ms:.2f} ms, "
            f"PyTorch {self.torch_ms:.2f} ms",
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_adapter(model: FewShotCheckpoint, path: str | Path, statistics: str,
                  data_root: str | Path | None = None, n_tasks: int = 100, seed: int = 0,
                  threads: int = 1, warmup: int = 5) -> OnnxCheck:  # fmt: skip
    """Compare the adapter at ``path`` (``export_adapter(model, path, statistics)``) with
    PyTorch on ``n_tasks`` test tasks of the checkpoint's own dataset and shape."""
    ort = require("onnxruntime", "checking an ONNX export")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    data_cfg = model.config.data
    data = load_split(data_cfg.dataset, "test", data_root, **data_cfg.load_options())
    sampler = EpisodeSampler(data, data_cfg.test_shape, seed=seed)
    graph = AdapterGraph(model.method, model.method.n_way, statistics).eval()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    diff = diff_fast = scale = 0.0
    same, total, onnx_times, torch_times = 0, 0, [], []
    try:
        with torch.no_grad():
            for _ in range(n_tasks):
                task = sampler.sample(1)
                args = (task.support_x[0], task.support_y[0], task.query_x[0])
                feed = dict(zip(("support_images", "support_labels", "query_images"),
                                (a.numpy() for a in args)))  # fmt: skip
                started = time.perf_counter()
                out = torch.from_numpy(session.run(None, feed)[0])
                onnx_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                fast = graph(*args)
                torch_times.append(time.perf_counter() - started)
                with portable():
                    reference = graph(*args)
                diff = max(diff, (out - reference).abs().max().item())
                diff_fast = max(diff_fast, (out - fast).abs().max().item())
                scale = max(scale, reference.abs().max().item())
                same += int((out.argmax(-1) == fast.argmax(-1)).sum())
                total += out.shape[0]
    finally:
        torch.set_num_threads(before)
    skip = min(warmup, n_tasks - 1)
    return OnnxCheck(n_tasks, diff, diff_fast, scale, same / total,
                     1000 * stats.median(onnx_times[skip:]),
                     1000 * stats.median(torch_times[skip:]), threads)  # fmt: skip
