"""The magnitude of the classifier update (the paper's Table 3).

For each test task, the norm of the change adaptation makes to the linear classifier: the
Frobenius norm of the weight update [N, D] and the Euclidean norm of the bias update [N]. MAML's
update is ``-alpha * gradient`` (per inner step); HyperMAML's is the hypernetwork's output. The
tasks are those of ``evaluate`` with the same seed, so the norms belong to the scored tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import ClassImages, TaskShape, load_split
from ..engine.device import pick_device
from ..evaluation.protocol import eval_batches
from ..evaluation.stats import mean_ci95
from ..methods import MAML, Method, load_method

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
    shape: TaskShape,
    n_tasks: int = 600,
    seed: int = 0,
    batch_size: int = 8,
) -> UpdateNorms:
    """Norms of the classifier update on ``n_tasks`` tasks of ``shape`` from ``data``, drawn
    from ``seed``."""
    weights: list[float] = []
    biases: list[float] = []
    with torch.no_grad():
        for batch in eval_batches(method, data, shape, n_tasks, seed, batch_size):
            delta_w, delta_b = method.classifier_update(batch.support_x, batch.support_y)
            weights.extend(delta_w.flatten(1).norm(dim=1).tolist())
            biases.extend(delta_b.norm(dim=1).tolist())
    (w_mean, w_ci), (b_mean, b_ci) = mean_ci95(weights), mean_ci95(biases)
    return UpdateNorms(w_mean, w_ci, b_mean, b_ci, len(weights), weights, biases)


def analyze_updates(
    paths: Sequence[str | Path],
    split: str = "test",
    n_tasks: int = 600,
    seed: int = 0,
    maml_steps: int | None = None,
    data_root: str | Path | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """The update norms of each checkpoint (MAML with ``maml_steps`` inner steps at test time,
    default its own) on the tasks of its own dataset and shape; one report per checkpoint,
    ``log``-ged beside the paper's Table 3."""
    torch_device = pick_device(device)
    reports = []
    if log:
        log(f"{'checkpoint':<44} {'|delta weight|':>16} {'|delta bias|':>14}  "
            f"paper (weight / bias)")  # fmt: skip
    for path in paths:
        ckpt = load_method(path, torch_device)
        method, dc = ckpt.method, ckpt.config.data
        steps = None
        if isinstance(method, MAML):  # the steps adaptation takes at test time
            method.set_test_steps(maml_steps)
            steps = method.eval().steps
        data = load_split(dc.dataset, split, data_root, **dc.load_options())
        norms = update_norms(method, data, dc.test_shape, n_tasks, seed)
        name = ckpt.meta["method"]
        if log:
            paper = PAPER_TABLE3.get(name)
            paper_text = (
                f"{paper[0][0]} ± {paper[0][1]} / {paper[1][0]} ± {paper[1][1]}" if paper else "-"
            )
            log(f"{str(path):<44} {norms.weight_mean:>8.2f} ± {norms.weight_ci95:<5.2f} "
                f"{norms.bias_mean:>6.2f} ± {norms.bias_ci95:<5.2f}  {paper_text}")  # fmt: skip
        reports.append({
            **norms.summary(), "method": name, "maml_steps": steps, "checkpoint": str(ckpt.path),
            "dataset": dc.dataset, "split": split, "n_way": dc.n_way, "n_shot": dc.n_shot,
            "seed": seed,
        })  # fmt: skip
    if log:
        log(f"({n_tasks} {split} tasks of seed {seed}; the paper's figures are for "
            f"Omniglot -> EMNIST 5-way 1-shot, MAML with one step)")  # fmt: skip
    return reports
