"""The 2-D toy of the paper's Figure 1/3 (appendix A): four ellipses, four permuted-label tasks.

Four elongated Gaussian clusters: ``top`` and ``bottom`` (long along x) centred at (0, +-c),
``left`` and ``right`` (long along y) centred at (-+c, 0). A task separates the two horizontal
or the two vertical ellipses, with the labels in either order, so the four tasks need the
four opposite directions of a linear classifier: no universal classifier solves them all.

One gradient step from a shared init moves the logit-difference vector along the (residual
weighted) difference of the class means. The clusters are long (std 4 along their axis, 0.1
across) and close to the origin, so the long-axis noise of those means tilts the step away
from the separating axis. MAML-1 then meta-learns a compromise init that gets some tasks
backwards (most seeds), or a near-zero one that leaves every task near 85-90%; five steps
rotate the weights onto the axis, and HyperMAML's one generated update does too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..config import HyperMAMLConfig, MAMLConfig
from ..data.episodes import TaskBatch
from ..methods import MAML, HyperMAML, Method
from ..models import IdentityEncoder
from ..outputs import claim_folder
from ..reports import write_json
from .toy2d_plot import LinearView, plot_toy2d

ELLIPSES = ("top", "bottom", "left", "right")
N_SHOT = 100
"""Support points per class (the toy is about the update rule, not about few shots)."""
TRAIN_QUERY = 16
EVAL_QUERY = 500
EVAL_EPISODES = 10


@dataclass(frozen=True)
class ToyGeometry:
    centre: float = 1.0
    """Distance of every ellipse's centre from the origin."""
    long_std: float = 4.0
    short_std: float = 0.1


@dataclass(frozen=True)
class ToyTask:
    name: str
    ellipses: tuple[int, int]
    """Indices into ``ELLIPSES`` of the ellipse labelled 0 and the one labelled 1."""


@dataclass(frozen=True)
class MethodSpec:
    """How one method is built and meta-trained (Adam on its own ``meta_loss``, cosine lr)."""

    name: str
    inner_steps: int
    """MAML gradient steps; 0 means HyperMAML (one generated update)."""
    inner_lr: float
    lr: float
    iterations: int
    tasks_per_batch: int
    """A multiple of 4: every batch holds each of the four tasks equally often."""


DEFAULT_GEOMETRY = ToyGeometry()
METHOD_SPECS = (
    MethodSpec("MAML-1", inner_steps=1, inner_lr=0.25, lr=1e-2, iterations=1500, tasks_per_batch=4),
    MethodSpec("MAML-5", inner_steps=5, inner_lr=0.25, lr=1e-2, iterations=1500, tasks_per_batch=4),
    MethodSpec(
        "HyperMAML", inner_steps=0, inner_lr=0.0, lr=1e-2, iterations=2000, tasks_per_batch=32
    ),
)


def toy_tasks() -> tuple[ToyTask, ...]:
    """The four tasks, named ``label0|label1``: top|bottom, bottom|top, left|right, right|left."""
    pairs = ((0, 1), (1, 0), (2, 3), (3, 2))
    return tuple(ToyTask(f"{ELLIPSES[a]}|{ELLIPSES[b]}", (a, b)) for a, b in pairs)


def ellipse_params(geometry: ToyGeometry = DEFAULT_GEOMETRY) -> tuple[torch.Tensor, torch.Tensor]:
    """(centres [4, 2], per-axis standard deviations [4, 2]) in the order of ``ELLIPSES``."""
    c, lo, sh = geometry.centre, geometry.long_std, geometry.short_std
    centres = torch.tensor([[0.0, c], [0.0, -c], [-c, 0.0], [c, 0.0]])
    stds = torch.tensor([[lo, sh], [lo, sh], [sh, lo], [sh, lo]])
    return centres, stds


def sample_ellipses(
    ellipse_ids: torch.Tensor,
    n: int,
    generator: torch.Generator,
    geometry: ToyGeometry = DEFAULT_GEOMETRY,
) -> torch.Tensor:
    """``n`` points of each ellipse: ellipse_ids long [*S] -> points float [*S, n, 2]."""
    centres, stds = ellipse_params(geometry)
    z = torch.randn(*ellipse_ids.shape, n, 2, generator=generator)
    return centres[ellipse_ids][..., None, :] + stds[ellipse_ids][..., None, :] * z


def sample_tasks(
    task_ids: Sequence[int],
    n_shot: int,
    n_query: int,
    generator: torch.Generator,
    geometry: ToyGeometry = DEFAULT_GEOMETRY,
) -> TaskBatch:
    """B = len(task_ids) tasks: support_x [B, 2K, 2], query_x [B, 2Q, 2], labels class-major."""
    tasks = toy_tasks()
    ids = torch.tensor([tasks[t].ellipses for t in task_ids], dtype=torch.long)  # [B, 2]
    points = sample_ellipses(ids, n_shot + n_query, generator, geometry)  # [B, 2, K+Q, 2]
    b = len(task_ids)
    labels = torch.arange(2)
    return TaskBatch(
        support_x=points[:, :, :n_shot].reshape(b, 2 * n_shot, 2),
        support_y=labels.repeat_interleave(n_shot).expand(b, -1).contiguous(),
        query_x=points[:, :, n_shot:].reshape(b, 2 * n_query, 2),
        query_y=labels.repeat_interleave(n_query).expand(b, -1).contiguous(),
        n_way=2,
        n_shot=n_shot,
    )


def build_toy_method(spec: MethodSpec) -> Method:
    """A fresh linear (identity-encoder) 2-way MAML or HyperMAML as ``spec`` describes."""
    if spec.inner_steps == 0:
        cfg = HyperMAMLConfig(hn_width=64, warmup_epochs=0, switch_epochs=0)
        return HyperMAML(IdentityEncoder(2), 2, cfg)
    cfg = MAMLConfig(inner_steps=spec.inner_steps, inner_lr=spec.inner_lr, adapt="all")
    return MAML(IdentityEncoder(2), 2, cfg)


def train_method(
    spec: MethodSpec,
    seed: int = 0,
    iterations: int | None = None,
    geometry: ToyGeometry = DEFAULT_GEOMETRY,
) -> tuple[Method, list[float]]:
    """Build (seeded) and meta-train one method; returns it with its per-iteration losses."""
    torch.manual_seed(seed)
    method = build_toy_method(spec)
    generator = torch.Generator().manual_seed(seed)
    n_iter = spec.iterations if iterations is None else iterations
    optimizer = torch.optim.Adam(method.parameters(), lr=spec.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(1, n_iter))
    task_ids = list(range(4)) * max(1, spec.tasks_per_batch // 4)
    losses = []
    method.train()
    for _ in range(n_iter):
        batch = sample_tasks(task_ids, N_SHOT, TRAIN_QUERY, generator, geometry)
        loss, _ = method.meta_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return method, losses


def task_accuracy(method: Method, batch: TaskBatch) -> torch.Tensor:
    """Query accuracy [B] of each task of ``batch`` after the method's test-time adaptation."""
    method.eval()
    with torch.no_grad():
        logits = method.predict(batch.query_x, method.adapt(batch.support_x, batch.support_y))
    return (logits.argmax(-1) == batch.query_y).float().mean(1)


def linear_view(method: MAML | HyperMAML, batch: TaskBatch) -> LinearView:
    """Universal and adapted weights of a linear MAML / HyperMAML as w1 - w0 and b1 - b0."""
    method.eval()
    with torch.no_grad():
        delta_w, delta_b = method.classifier_update(batch.support_x, batch.support_y)
    w0, b0 = method.head.weight.detach(), method.head.bias.detach()
    w, b = w0 + delta_w, b0 + delta_b  # [B, 2, 2], [B, 2]
    return LinearView(w0[1] - w0[0], b0[1] - b0[0], w[:, 1] - w[:, 0], b[:, 1] - b[:, 0])


def format_table(accuracy: dict[str, dict[str, float]]) -> str:
    """Method x task accuracy table (percent) as text."""
    names = [t.name for t in toy_tasks()]
    lines = [f"{'method':<10}" + "".join(f"{n:>13}" for n in names)]
    for method, row in accuracy.items():
        lines.append(f"{method:<10}" + "".join(f"{100 * row[n]:>12.1f}%" for n in names))
    return "\n".join(lines)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread for the duration (2-D tensors gain nothing from more; on a busy
    2-core machine extra threads slow these tiny ops 10x or worse); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


DEMO_FILES = ("toy2d.png", "toy2d_accuracy.json")


def run_demo(
    out_dir: Path, seed: int = 0, iterations: int | None = None, force: bool = False
) -> dict:
    """Train MAML-1, MAML-5 and HyperMAML on the toy, evaluate, plot; returns the accuracies.

    Accuracy of (method, task): mean over ``EVAL_EPISODES`` fresh episodes (K = ``N_SHOT``
    support and ``EVAL_QUERY`` query points per class), the same episodes for every method.
    Writes ``toy2d_accuracy.json`` and ``toy2d.png`` (the first episode of every task) to
    ``out_dir`` (a new folder, one an earlier demo wrote, or, with ``force``, any folder without
    those files). ``iterations`` overrides every method's number of training iterations.
    Returns {method name: {task name: accuracy in [0, 1]}}.
    """
    out_dir = claim_folder(out_dir, "demo", force, DEMO_FILES,
                           lambda p: (p / "toy2d_accuracy.json").is_file())  # fmt: skip
    start = time.perf_counter()
    names = [t.name for t in toy_tasks()]
    accuracy: dict[str, dict[str, float]] = {}
    shown: dict[str, list[float]] = {}
    views: dict[str, LinearView] = {}
    with _one_thread():
        eval_gen = torch.Generator().manual_seed(seed + 1)
        episodes = [
            sample_tasks(range(4), N_SHOT, EVAL_QUERY, eval_gen) for _ in range(EVAL_EPISODES)
        ]
        for spec in METHOD_SPECS:
            method, _ = train_method(spec, seed, iterations)
            acc = torch.stack([task_accuracy(method, ep) for ep in episodes])  # [E, 4]
            accuracy[spec.name] = dict(zip(names, acc.mean(0).tolist()))
            shown[spec.name] = acc[0].tolist()
            views[spec.name] = linear_view(method, episodes[0])
        dataset = sample_ellipses(torch.arange(4), 300, torch.Generator().manual_seed(seed + 2))
    train_seconds = time.perf_counter() - start
    plot_toy2d(out_dir / "toy2d.png", dataset, episodes[0], views, shown, names, list(ELLIPSES))
    report = {
        "accuracy": accuracy,
        "shown_episode_accuracy": {m: dict(zip(names, a)) for m, a in shown.items()},
        "seed": seed,
        "iterations": {
            s.name: s.iterations if iterations is None else iterations for s in METHOD_SPECS
        },
        "methods": [asdict(s) for s in METHOD_SPECS],
        "geometry": asdict(DEFAULT_GEOMETRY),
        "n_shot": N_SHOT,
        "eval_query": EVAL_QUERY,
        "eval_episodes": EVAL_EPISODES,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(out_dir / "toy2d_accuracy.json", report)
    print(f"2-D toy, query accuracy (mean of {EVAL_EPISODES} episodes per task, seed {seed}):")
    print(format_table(accuracy))
    print(
        f"trained and evaluated in {train_seconds:.1f} s; wrote {out_dir / 'toy2d.png'} and "
        f"{out_dir / 'toy2d_accuracy.json'}"
    )
    return accuracy
