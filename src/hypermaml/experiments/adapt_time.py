"""Adaptation time against accuracy (the paper's Table 4): MAML with k steps and HyperMAML.

The same test tasks go through a trained MAML with each step count and through a trained
HyperMAML, in one process on one machine; each row gives the seconds for all tasks (adaptation
and prediction, as ``evaluate`` measures them) and the accuracy. ``plot_adapt`` draws accuracy
against time.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import ClassImages, TaskShape, load_split
from ..engine.device import pick_device
from ..errors import ConfigError
from ..evaluation import evaluate
from ..methods import MAML, HyperMAML, load_method
from .environment import environment
from .plotting import pyplot

DEFAULT_STEPS = (0, 1, 2, 3, 4, 5, 10, 25, 50, 100)

#: the paper's Table 4 (Omniglot -> EMNIST 5-way 1-shot, RTX 2080): steps -> (seconds, accuracy)
PAPER_TABLE4 = {
    "maml": {0: (2.17, 19.978), 1: (5.16, 74.67), 2: (7.30, 74.69), 3: (8.87, 74.71),
             4: (10.79, 74.71), 5: (12.66, 74.71), 10: (22.60, 74.74), 25: (51.75, 74.78),
             50: (103.88, 74.82), 100: (212.62, 74.86)},
    "hypermaml": {None: (8.21, 80.78)},
}  # fmt: skip


@dataclass
class AdaptRow:
    method: str
    steps: int | None
    """MAML's inner steps at test time; None for HyperMAML."""
    seconds: float
    """Seconds for all tasks (the mean over repeats)."""
    seconds_sd: float
    """Standard deviation of the seconds over repeats (0 for one repeat)."""
    accuracy: float
    ci95: float
    n_tasks: int


def adapt_benchmark(
    maml: MAML | None,
    hypermaml: HyperMAML | None,
    data: ClassImages,
    shape: TaskShape,
    steps: Sequence[int] = DEFAULT_STEPS,
    n_tasks: int = 600,
    seed: int = 0,
    repeats: int = 1,
    log: Callable[[str], None] | None = print,
) -> list[AdaptRow]:
    """Time and score ``maml`` with each step count and ``hypermaml`` on the same tasks."""
    cases: list[tuple[str, int | None, MAML | HyperMAML]] = []
    if maml is not None:
        base = maml.cfg
        cases += [("maml", k, maml) for k in steps]
    if hypermaml is not None:
        cases.append(("hypermaml", None, hypermaml))
    rows = []
    for name, k, method in cases:
        if k is not None:
            method.set_test_steps(k)
        # an untimed warm-up on a few other tasks picks the kernels for these shapes
        evaluate(method, data, shape, min(n_tasks, 16), seed + 1)
        runs = [evaluate(method, data, shape, n_tasks, seed) for _ in range(repeats)]
        seconds = [r.seconds_per_task * r.n_tasks for r in runs]
        row = AdaptRow(
            name, k, statistics.fmean(seconds), statistics.pstdev(seconds),
            runs[0].accuracy, runs[0].ci95, runs[0].n_tasks,
        )  # fmt: skip
        rows.append(row)
        if log:
            log(format_rows([row], header=len(rows) == 1))
    if maml is not None:
        maml.cfg = base
    return rows


def format_rows(rows: list[AdaptRow], header: bool = True) -> str:
    lines = []
    if header:
        head = f"{'method':<10} {'steps':>5} {'seconds':>16} {'accuracy':>15}"
        lines.append(f"{head}   paper (s / %)")
    for r in rows:
        paper = PAPER_TABLE4.get(r.method, {}).get(r.steps)
        paper_text = f"{paper[0]} / {paper[1]}" if paper else "-"
        steps = "-" if r.steps is None else str(r.steps)
        spread = f" ± {r.seconds_sd:.2f}" if r.seconds_sd else ""
        lines.append(
            f"{r.method:<10} {steps:>5} {r.seconds:>9.2f}{spread:<7} "
            f"{r.accuracy:>7.2f} ± {r.ci95:<5.2f}   {paper_text}"
        )
    return "\n".join(lines)


def plot_adapt(rows: list[AdaptRow], path: str | Path, title: str = "") -> None:
    """Accuracy against seconds: MAML's step counts as a labelled line, HyperMAML a star."""
    plt = pyplot("the adaptation-time figure")
    fig, ax = plt.subplots(figsize=(6, 4))
    maml = [r for r in rows if r.method == "maml"]
    if maml:
        ax.plot([r.seconds for r in maml], [r.accuracy for r in maml], "o-", label="MAML")
        for r in maml:
            ax.annotate(str(r.steps), (r.seconds, r.accuracy), textcoords="offset points",
                        xytext=(4, -10), fontsize=8)  # fmt: skip
    for r in rows:
        if r.method == "hypermaml":
            ax.plot(r.seconds, r.accuracy, "*", markersize=14, label="HyperMAML")
    ax.set_xscale("log")
    ax.set_xlabel(f"seconds for {rows[0].n_tasks} test tasks (log scale)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "adaptation time against accuracy", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_adapt_bench(
    maml: str | Path | None,
    hypermaml: str | Path | None,
    steps: Sequence[int] = DEFAULT_STEPS,
    split: str = "test",
    n_tasks: int = 600,
    seed: int = 0,
    repeats: int = 1,
    data_root: str | Path | None = None,
    device: str | None = None,
    threads: int | None = None,
    plot: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """``hypermaml bench adapt``: load the MAML and/or HyperMAML checkpoints (trained on the same
    tasks), time and score them on ``n_tasks`` tasks of ``split`` (``adapt_benchmark``), draw
    ``plot`` if given, and return the report (rows, machine, settings)."""
    if not (maml or hypermaml):
        raise ConfigError("bench adapt needs --maml CHECKPOINT and/or --hypermaml CHECKPOINT")
    if threads:
        torch.set_num_threads(threads)
    torch_device = pick_device(device)
    models, data_cfg = {}, None
    for name, path in (("maml", maml), ("hypermaml", hypermaml)):
        if path:
            ckpt = load_method(path, torch_device, expect_method=name)
            models[name] = ckpt.method
            dc = ckpt.config.data
            if data_cfg is not None and (data_cfg.dataset, data_cfg.test_shape) != (
                dc.dataset,
                dc.test_shape,
            ):
                raise ConfigError("--maml and --hypermaml were trained on different tasks")
            data_cfg = dc
    data = load_split(data_cfg.dataset, split, data_root, **data_cfg.load_options())
    rows = adapt_benchmark(models.get("maml"), models.get("hypermaml"), data,
                           data_cfg.test_shape, steps, n_tasks, seed, repeats, log)  # fmt: skip
    if log:
        log(
            f"({n_tasks} {data_cfg.dataset} {split} tasks of seed {seed}, {torch_device}, "
            f"{torch.get_num_threads()} threads; the paper: Omniglot -> EMNIST, RTX 2080)"
        )
    if plot:
        plot_adapt(rows, plot, f"{data_cfg.dataset} {data_cfg.n_way}-way "
                   f"{data_cfg.n_shot}-shot, {n_tasks} tasks, {torch_device}")  # fmt: skip
    return {"rows": [asdict(r) for r in rows], "environment": environment(),
            "dataset": data_cfg.dataset, "split": split, "seed": seed,
            "maml": str(maml) if maml else None,
            "hypermaml": str(hypermaml) if hypermaml else None}  # fmt: skip
