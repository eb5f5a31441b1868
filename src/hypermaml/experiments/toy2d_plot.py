"""The figure of the 2-D toy (paper's Figure 3): data set, then one column per task.

Row = method. Column 0: the four ellipses. Columns 1-4: a task's points coloured by label,
the adapted linear model's regions and decision boundary, the universal weight vector (blue)
and the adapted one (red), both as w1 - w0 and drawn to a common scale per panel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.episodes import TaskBatch
from .plotting import pyplot


@dataclass
class LinearView:
    """A 2-way linear model seen as logit difference: logit_1 - logit_0 = w . x + b.

    universal_w [2], universal_b [] (the meta-learned init); adapted_w [B, 2], adapted_b [B].
    """

    universal_w: torch.Tensor
    universal_b: torch.Tensor
    adapted_w: torch.Tensor
    adapted_b: torch.Tensor


LABEL_COLOURS = ("tab:orange", "tab:green")
REGION_COLOURS = ("#fde3c8", "#d2efd2")
ELLIPSE_COLOURS = ("tab:purple", "tab:brown", "tab:olive", "tab:cyan")
LIMIT = 10.0
MAX_POINTS = 150
"""Query points drawn per class (the rest are evaluated, not drawn)."""


def _style(ax: Any, title: str) -> None:
    ax.set_xlim(-LIMIT, LIMIT)
    ax.set_ylim(-LIMIT, LIMIT)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _draw_dataset(ax: Any, dataset: torch.Tensor, ellipse_names: list[str]) -> None:
    """dataset [4, n, 2]: the points of each ellipse."""
    for points, name, colour in zip(dataset, ellipse_names, ELLIPSE_COLOURS):
        ax.scatter(points[:, 0], points[:, 1], s=2, color=colour, label=name)
    ax.legend(fontsize=6, loc="lower left", markerscale=3, handletextpad=0.1)
    _style(ax, "data set: four ellipses")


def _draw_task(
    ax: Any,
    batch: TaskBatch,
    task: int,
    w: torch.Tensor,
    b: torch.Tensor,
    w0: torch.Tensor,
    title: str,
) -> None:
    """One task's points, the regions of logit_1 - logit_0 = w . x + b, and the arrows w0, w."""
    grid = torch.linspace(-LIMIT, LIMIT, 201)
    gx, gy = torch.meshgrid(grid, grid, indexing="xy")
    margin = w[0] * gx + w[1] * gy + b
    ax.contourf(gx, gy, (margin > 0).float(), levels=[-0.5, 0.5, 1.5], colors=REGION_COLOURS)
    if margin.min() < 0 < margin.max():
        ax.contour(gx, gy, margin, levels=[0.0], colors="k", linewidths=1)
    q = batch.query_x.shape[1] // 2
    for label, colour in enumerate(LABEL_COLOURS):
        points = batch.query_x[task, label * q : label * q + min(q, MAX_POINTS)]
        ax.scatter(points[:, 0], points[:, 1], s=2, color=colour, label=f"label {label}")
    scale = 0.8 * LIMIT / max(w0.norm().item(), w.norm().item(), 1e-12)
    for vec, colour in ((w0, "tab:blue"), (w, "tab:red")):
        ax.quiver(
            0,
            0,
            scale * vec[0].item(),
            scale * vec[1].item(),
            color=colour,
            angles="xy",
            scale_units="xy",
            scale=1,
            width=0.02,
            zorder=3,
        )
    ax.text(
        0.02,
        0.02,
        f"|w|={w0.norm():.2g} -> {w.norm():.2g}",
        transform=ax.transAxes,
        fontsize=6,
        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0},
    )
    _style(ax, title)


def plot_toy2d(
    path: Path,
    dataset: torch.Tensor,
    batch: TaskBatch,
    views: dict[str, LinearView],
    accuracy: dict[str, list[float]],
    task_names: list[str],
    ellipse_names: list[str],
) -> None:
    """Save the method x (data set + tasks) figure to ``path`` (PNG).

    dataset [4, n, 2]; batch: one episode of the 4 tasks (query_x [4, 2Q, 2]);
    views: per method, its ``LinearView`` on ``batch``; accuracy: per method, [4] on ``batch``.
    """
    plt = pyplot("the 2-D toy figure")
    n_rows, n_cols = len(views), 1 + len(task_names)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.6 * n_cols, 3.0 * n_rows), squeeze=False)
    for row, (method, view) in enumerate(views.items()):
        _draw_dataset(axes[row, 0], dataset, ellipse_names)
        axes[row, 0].set_ylabel(method, fontsize=10)
        for t, task_name in enumerate(task_names):
            title = f"{method}: {task_name}\naccuracy {100 * accuracy[method][t]:.1f}%"
            _draw_task(
                axes[row, t + 1],
                batch,
                t,
                view.adapted_w[t],
                view.adapted_b[t],
                view.universal_w,
                title,
            )
    fig.suptitle(
        "2-D toy, one episode per task (label0|label1; accuracy on the episode shown). "
        "Arrows w1 - w0: blue universal, red adapted (common scale per panel)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
