"""The magnitude of the classifier update (the paper's Table 3).

For each test task, the norm of the change adaptation makes to the linear classifier: the
Frobenius norm of the weight update [N, D] and the Euclidean norm of the bias update [N]. MAML's
update is ``-alpha * gradient`` (per inner step); HyperMAML's is the hypernetwork's output. The
tasks are those of ``evaluate`` with the same seed, so the norms belong to the scored tasks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..data import ClassImages, EpisodeSampler
from ..evaluation.stats import mean_ci95
from ..methods import Method

#: Table 3 of the paper (Omniglot -> EMNIST, 5-way 1-shot): (weight, bias) as (mean, interval)
PAPER_TABLE3 = {
    "maml": ((2.53, 0.29), (1.47, 0.14)),
    "hypermaml": ((113.28, 0.63), (27.72, 0.68)),
}


@dataclass
class UpdateNorms:
    weight_mean: float
    weight_ci95: float
    bias_mean: float
    bias_ci95: float
    n_tasks: int
    weight_norms: list[float]
    bias_norms: list[float]

    def summary(self) -> dict:
        out = asdict(self)
        out.pop("weight_norms")
        out.pop("bias_norms")
        return out


def update_norms(
    method: Method,
    data: ClassImages,
    n_way: int,
    n_shot: int,
    n_query: int = 15,
    n_tasks: int = 600,
    seed: int = 0,
    batch_size: int = 8,
) -> UpdateNorms:
    """Norms of the classifier update on ``n_tasks`` tasks of ``data`` drawn from ``seed``."""
    method.check_n_way(n_way)
    device = next(method.parameters()).device
    sampler = EpisodeSampler(data, n_way, n_shot, n_query, seed)
    was_training = method.training
    method.eval()
    weights: list[float] = []
    biases: list[float] = []
    try:
        with torch.no_grad():
            for batch in sampler.batches(n_tasks, batch_size):
                batch = batch.to(device)
                delta_w, delta_b = method.classifier_update(batch.support_x, batch.support_y)
                weights.extend(delta_w.flatten(1).norm(dim=1).tolist())
                biases.extend(delta_b.norm(dim=1).tolist())
    finally:
        method.train(was_training)
    (w_mean, w_ci), (b_mean, b_ci) = mean_ci95(weights), mean_ci95(biases)
    return UpdateNorms(w_mean, w_ci, b_mean, b_ci, len(weights), weights, biases)
