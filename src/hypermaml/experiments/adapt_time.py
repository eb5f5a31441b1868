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

from ..config import DataConfig, load_config
from ..data import ClassImages, TaskShape, load_split
from ..engine.device import pick_device
from ..errors import ConfigError
from ..evaluation import evaluate
from ..methods import MAML, HyperMAML, build_method, load_method
from . import speed
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
#: the paper's Table 8 (5-way 1-shot, 600 test tasks at 84x84, the authors' GPU)
PAPER_TABLE8 = {
    "cub": {
        "maml": {0: (4.15, 20.01), 1: (6.89, 47.99), 2: (9.44, 58.53), 3: (11.60, 61.54),
                 4: (12.97, 62.18), 5: (15.00, 62.66), 6: (16.90, 62.77), 7: (19.07, 62.83)},
        "hypermaml": {None: (8.46, 66.11)},
    },
    "mini_imagenet": {
        "maml": {0: (4.24, 20.10), 1: (8.48, 43.46), 2: (10.50, 48.71), 3: (13.17, 48.32),
                 4: (15.17, 48.82), 5: (17.29, 48.89), 6: (19.01, 48.80), 7: (20.55, 48.87)},
        "hypermaml": {None: (11.11, 53.41)},
    },
}  # fmt: skip
PAPER_TABLES = {"cross_char": PAPER_TABLE4, **PAPER_TABLE8}
"""Dataset -> the paper's timing table for it."""


@dataclass
class AdaptRow:
    method: str
    steps: int | None
    """MAML's inner steps at test time; None for HyperMAML."""
    seconds: float
    """Seconds for all tasks (the mean over repeats)."""
    seconds_sd: float
    """Standard deviation of the seconds over repeats (0 for one repeat)."""
    accuracy: float | None
    """None for untrained weights (a timing only)."""
    ci95: float | None
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
    scored: bool = True,
    paper: dict | None = None,
) -> list[AdaptRow]:
    """Time and score ``maml`` with each step count and ``hypermaml`` on the same tasks
    (``scored=False``: time only, for untrained weights). ``paper``: the published table shown
    alongside (``PAPER_TABLES``)."""
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
            runs[0].accuracy if scored else None, runs[0].ci95 if scored else None,
            runs[0].n_tasks,
        )  # fmt: skip
        rows.append(row)
        if log:
            log(format_rows([row], header=len(rows) == 1, paper=paper))
    if maml is not None:
        maml.cfg = base
    return rows


def format_rows(rows: list[AdaptRow], header: bool = True, paper: dict | None = None) -> str:
    """The rows as a table, with the published ``paper`` table's (seconds / %) alongside."""
    lines = []
    if header:
        head = f"{'method':<10} {'steps':>5} {'seconds':>16} {'accuracy':>15}"
        lines.append(f"{head}   paper (s / %)")
    for r in rows:
        published = (paper or {}).get(r.method, {}).get(r.steps)
        paper_text = f"{published[0]} / {published[1]}" if published else "-"
        steps = "-" if r.steps is None else str(r.steps)
        spread = f" ± {r.seconds_sd:.2f}" if r.seconds_sd else ""
        score = "untrained" if r.accuracy is None else f"{r.accuracy:.2f} ± {r.ci95:.2f}"
        lines.append(
            f"{r.method:<10} {steps:>5} {r.seconds:>9.2f}{spread:<7} {score:>15}   {paper_text}"
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
    untrained: bool = False,
) -> dict:
    """``hypermaml bench adapt``: load the MAML and/or HyperMAML checkpoints (trained on the same
    tasks), time and score them on ``n_tasks`` tasks of ``split`` (``adapt_benchmark``), draw
    ``plot`` if given, and return the report (rows, machine, settings).

    ``untrained``: ``maml`` and ``hypermaml`` name configs instead; each method is built with
    fresh weights and timed on tasks of a synthetic split with the shape of the config's dataset
    (the speed depends on shapes, not pixels), as the paper's Table 8 can be timed without data.
    """
    what = "CONFIG" if untrained else "CHECKPOINT"
    if not (maml or hypermaml):
        raise ConfigError(f"bench adapt needs --maml {what} and/or --hypermaml {what}")
    if untrained and plot:
        raise ConfigError("--plot draws accuracy against time: it needs trained checkpoints")
    if threads:
        torch.set_num_threads(threads)
    torch_device = pick_device(device)
    models, data_cfg = {}, None
    for name, path in (("maml", maml), ("hypermaml", hypermaml)):
        if path:
            models[name], dc = _method(name, path, torch_device, untrained)
            if data_cfg is not None and (data_cfg.dataset, data_cfg.test_shape) != (
                dc.dataset,
                dc.test_shape,
            ):
                raise ConfigError("--maml and --hypermaml were trained on different tasks")
            data_cfg = dc
    if untrained:
        data = speed.synthetic_split(speed.BenchSettings(dataset=data_cfg.dataset))
    else:
        data = load_split(data_cfg.dataset, split, data_root, **data_cfg.load_options())
    paper = PAPER_TABLES.get(data_cfg.dataset)
    rows = adapt_benchmark(models.get("maml"), models.get("hypermaml"), data, data_cfg.test_shape,
                           steps, n_tasks, seed, repeats, log, not untrained, paper)  # fmt: skip
    if log:
        tasks = "synthetic tasks (untrained weights)" if untrained else f"{split} tasks"
        log(
            f"({n_tasks} {data_cfg.dataset} {tasks} of seed {seed}, {torch_device}, "
            f"{torch.get_num_threads()} threads; the paper's table: the authors' GPU)"
        )
    if plot:
        plot_adapt(rows, plot, f"{data_cfg.dataset} {data_cfg.n_way}-way "
                   f"{data_cfg.n_shot}-shot, {n_tasks} tasks, {torch_device}")  # fmt: skip
    return {"rows": [asdict(r) for r in rows], "environment": environment(),
            "dataset": data_cfg.dataset, "split": "synthetic" if untrained else split,
            "seed": seed, "untrained": untrained, "maml": str(maml) if maml else None,
            "hypermaml": str(hypermaml) if hypermaml else None}  # fmt: skip


def _method(
    name: str, path: str | Path, device: torch.device, untrained: bool
) -> tuple[MAML | HyperMAML, DataConfig]:
    """The ``name`` method of checkpoint ``path`` (or, ``untrained``, built afresh from the
    config ``path``) in eval mode on ``device``, and its data config."""
    if not untrained:
        ckpt = load_method(path, device, expect_method=name)
        return ckpt.method, ckpt.config.data  # type: ignore[return-value]
    cfg = load_config(path)
    if cfg.method.name != name:
        raise ConfigError(f"--{name} {path}: that config trains {cfg.method.name}, not {name}")
    if cfg.data.dataset not in speed.SHAPES:
        raise ConfigError(
            f"--{name} {path}: bench adapt --untrained has no synthetic shape for dataset "
            f"{cfg.data.dataset!r}; choose a config of {', '.join(speed.SHAPES)}"
        )
    torch.manual_seed(cfg.train.seed)
    return build_method(cfg).to(device).eval(), cfg.data  # type: ignore[return-value]
