"""The few-shot test protocol: accuracy over tasks drawn from a seed, with a 95% interval.

Tasks depend only on the data, N, K, Q and the seed, so every method is scored on the same tasks.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from ..data import ClassImages, EpisodeSampler
from ..methods import Method
from .stats import mean_ci95


@dataclass
class EvalResult:
    accuracy: float
    """Mean query accuracy over the tasks, in percent."""
    ci95: float
    """Half-width of the 95% confidence interval, in percent."""
    n_tasks: int
    seconds_per_task: float
    """Wall time of adaptation and prediction per task (sampling excluded)."""
    task_accuracies: list[float]

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("task_accuracies")
        return out


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    method: Method,
    data: ClassImages,
    n_way: int,
    n_shot: int,
    n_query: int = 15,
    n_tasks: int = 600,
    seed: int = 0,
    batch_size: int = 8,
) -> EvalResult:
    """Score ``method`` on ``n_tasks`` tasks of ``data`` drawn from ``seed``."""
    method.check_n_way(n_way)
    device = next(method.parameters()).device
    sampler = EpisodeSampler(data, n_way, n_shot, n_query, seed)
    was_training = method.training
    method.eval()
    accuracies: list[float] = []
    elapsed = 0.0
    try:
        with torch.no_grad():
            for batch in sampler.batches(n_tasks, batch_size):
                batch = batch.to(device)
                _synchronize(device)
                start = time.perf_counter()
                logits = method(batch)
                _synchronize(device)
                elapsed += time.perf_counter() - start
                correct = (logits.argmax(-1) == batch.query_y).float().mean(1)
                accuracies.extend((100.0 * correct).tolist())
    finally:
        method.train(was_training)
    mean, ci = mean_ci95(accuracies)
    return EvalResult(mean, ci, len(accuracies), elapsed / len(accuracies), accuracies)
