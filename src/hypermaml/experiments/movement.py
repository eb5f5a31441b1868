"""How far MAML's inner loop moves each layer's weights (the HyperResNets paper, Figure 4).

For every test task, the Frobenius norm ||W_after - W_before|| of the weight each convolution
actually uses, before the inner loop (the meta-learnt start) and after the checkpoint's inner
steps (``MAML.adapt``); the mean over the tasks, per layer. A plain convolution uses its own
weight, which the inner loop changes directly when it adapts it (``adapt: all``). A hyper
convolution (``models/hyperconv.py``) uses the weight its hypernetwork generates from the
layer's embedding, W = H(E) (``HyperNetwork.forward``): with ``adapt: embeddings`` the inner loop
changes E, and the movement is ||H(E_after) - H(E_before)|| (H too, if the inner loop adapts
it). The paper averages over the tasks of each meta-batch during training; here the average is
over test tasks of a trained checkpoint, the tasks ``evaluate`` scores with the same seed. The
linear head, which both adapt, is reported as a last row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call

from ..data import ClassImages, TaskShape, load_split
from ..engine.device import pick_device
from ..errors import ConfigError
from ..evaluation.protocol import eval_batches
from ..evaluation.stats import mean_ci95
from ..methods import MAML, TaskParams, load_method
from ..models.hyperconv import HyperConv2d
from .plotting import pyplot


@dataclass
class WeightSource:
    """Where the weight of one layer comes from, by the method's parameter names.

    ``name``: the layer's name in the network (``convs.1``), alike in every encoder of the
    same network; ``prefix``: the layer's parameter prefix in the method
    (``encoder.net.convs.1``); ``kind``: ``plain`` (its own ``weight``), ``generated``
    (``hypernet(embedding)``) or ``head``; ``hypernet``: the prefix under which the method
    registers the layer's hypernetwork (shared ones once, by their owner)."""

    name: str
    prefix: str
    kind: str
    module: nn.Module
    hypernet: str | None = None

    def tensor_names(self, method: nn.Module) -> list[str]:
        """The method's parameters this layer's weight is computed from."""
        if self.kind != "generated":
            return [f"{self.prefix}.weight"]
        hyper = self.module.hypernet  # type: ignore[union-attr]
        return [f"{self.prefix}.embedding"] + [f"{self.hypernet}.{n}" for n, _ in
                                                hyper.named_parameters()]  # fmt: skip

    def weight(self, params: TaskParams) -> torch.Tensor:
        """The weight the layer uses with ``params`` (one task's tensors, by name, in place of
        the module's own): [C_out, C_in, k, k] (a head: [N, D])."""
        if self.kind != "generated":
            return params.get(f"{self.prefix}.weight", self.module.weight)
        layer: HyperConv2d = self.module  # type: ignore[assignment]
        embedding = params.get(f"{self.prefix}.embedding", layer.embedding)
        hyper = {n: params.get(f"{self.hypernet}.{n}", p) for n, p in
                 layer.hypernet.named_parameters()}  # fmt: skip
        return functional_call(layer.hypernet, hyper, (embedding,))


def weight_sources(method: MAML) -> list[WeightSource]:
    """Every convolution of the method's encoder, in module order, then the head."""
    registered = {id(module): name for name, module in method.named_modules()}
    skip = len("encoder.") + len(method.encoder.network_prefix)
    sources = []
    for name, module in method.encoder.named_modules(prefix="encoder"):
        if isinstance(module, HyperConv2d):
            hypernet = registered[id(module.hypernet)]
            sources.append(WeightSource(name[skip:], name, "generated", module, hypernet))
        elif isinstance(module, nn.Conv2d):
            sources.append(WeightSource(name[skip:], name, "plain", module))
    sources.append(WeightSource("head", "head", "head", method.head))
    return sources


def task_params(params: TaskParams, task: int) -> TaskParams:
    """One task's tensors of ``adapt``'s batched output (leading task dimension B)."""
    return {name: value[task] for name, value in params.items()}


@torch.no_grad()
def batch_movement(
    method: MAML, support_x: torch.Tensor, support_y: torch.Tensor, sources: list[WeightSource]
) -> dict[str, list[float]]:
    """||W_after - W_before|| per layer for each task of a batch (support_x [B, N*K, C, H, W],
    support_y [B, N*K]) -> layer name -> B norms."""
    adapted = method.adapt(support_x, support_y)
    before = {source.name: source.weight({}) for source in sources}
    moved: dict[str, list[float]] = {source.name: [] for source in sources}
    for task in range(support_x.shape[0]):
        params = task_params(adapted, task)
        for source in sources:
            delta = source.weight(params) - before[source.name]
            moved[source.name].append(delta.norm().item())
    return moved


@dataclass
class LayerMovement:
    """The mean inner-loop movement of one layer's weight over the tasks (± 95% interval)."""

    name: str
    kind: str
    shape: list[int]
    adapted: bool
    """Whether the inner loop changes any tensor the weight is computed from."""
    mean: float
    ci95: float
    weight_norm: float
    """||W_before||: the movement relative to the weight is ``mean / weight_norm``."""

    @property
    def relative(self) -> float | None:
        return self.mean / self.weight_norm if self.weight_norm > 0 else None


@dataclass
class MovementTable:
    """One checkpoint's per-layer movement on ``n_tasks`` tasks."""

    checkpoint: str
    hyper: str
    adapt: str
    steps: int
    n_tasks: int
    seconds: float
    layers: list[LayerMovement] = field(default_factory=list)

    def layer(self, name: str) -> LayerMovement | None:
        return next((row for row in self.layers if row.name == name), None)


def inner_loop_movement(
    method: MAML,
    data: ClassImages,
    shape: TaskShape,
    n_tasks: int = 600,
    seed: int = 0,
    batch_size: int = 8,
) -> list[LayerMovement]:
    """The per-layer movement over ``n_tasks`` tasks of ``shape`` from ``data`` drawn from
    ``seed``, with the method's test-time inner steps (eval mode, as ``evaluate`` adapts)."""
    sources = weight_sources(method)
    moved: dict[str, list[float]] = {source.name: [] for source in sources}
    for batch in eval_batches(method, data, shape, n_tasks, seed, batch_size):
        for name, norms in batch_movement(method, batch.support_x, batch.support_y,
                                          sources).items():  # fmt: skip
            moved[name].extend(norms)
    adapted = set(method.adapted_names())
    rows = []
    with torch.no_grad():
        for source in sources:
            mean, ci95 = mean_ci95(moved[source.name])
            weight = source.weight({})
            rows.append(LayerMovement(
                source.name, source.kind, list(weight.shape),
                bool(adapted & set(source.tensor_names(method))), mean, ci95, weight.norm().item(),
            ))  # fmt: skip
    return rows


def comparison_rows(tables: Sequence[MovementTable]) -> list[dict]:
    """Per layer of the first table: each table's mean movement and its ratio to the first's
    (the plain network first: a ratio > 1 means the layer moves more than the plain one)."""
    rows = []
    for ref in tables[0].layers:
        row: dict = {"layer": ref.name}
        for i, table in enumerate(tables):
            found = table.layer(ref.name)
            row[f"movement_{i}"] = found.mean if found else None
            row[f"relative_{i}"] = found.relative if found else None
            row[f"kind_{i}"] = found.kind if found else None
            if i and found:
                row[f"ratio_{i}"] = found.mean / ref.mean if ref.mean > 0 else None
        rows.append(row)
    return rows


def _cell(value: float | None, width: int, fmt: str = ".4g") -> str:
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def format_comparison(tables: Sequence[MovementTable]) -> str:
    """The comparison as a text table: per layer, each checkpoint's mean movement (#i), its
    ratio to the first's, and each movement relative to the weight's norm."""
    n = range(len(tables))
    lines = [f"#{i}: {t.checkpoint} (hyper {t.hyper}, adapt {t.adapt}, inner steps {t.steps})"
             for i, t in zip(n, tables)]  # fmt: skip
    lines.append(f"{'layer':<9}{'kind':>17}" + "".join(f"{'#' + str(i):>11}" for i in n)
                 + "".join(f"{'#' + str(i) + '/#0':>9}" for i in n[1:])
                 + "".join(f"{'rel #' + str(i):>10}" for i in n))  # fmt: skip
    for row in comparison_rows(tables):
        kinds = "/".join(str(row[f"kind_{i}"]) for i in n)
        text = f"{row['layer']:<9}{kinds:>17}"
        text += "".join(_cell(row[f"movement_{i}"], 11) for i in n)
        text += "".join(_cell(row.get(f"ratio_{i}"), 9, ".3g") for i in n[1:])
        text += "".join(_cell(row[f"relative_{i}"], 10, ".3g") for i in n)
        lines.append(text)
    return "\n".join(lines)


def plot_movement(tables: Sequence[MovementTable], path: str | Path, title: str = "") -> None:
    """Grouped bars: per layer, each checkpoint's mean movement (log scale; a layer that does
    not move is marked 0, or ``fixed`` when the inner loop does not adapt it)."""
    plt = pyplot("the inner-loop movement figure")
    names = [row.name for row in tables[0].layers]
    width = 0.8 / len(tables)
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 4))
    for i, table in enumerate(tables):
        rows = [table.layer(name) for name in names]
        means = [row.mean if row else 0.0 for row in rows]
        xs = [j + (i - (len(tables) - 1) / 2) * width for j in range(len(names))]
        label = (
            f"{Path(table.checkpoint).name} ({'generated' if table.hyper != 'none' else 'plain'})"
        )
        ax.bar(xs, [m if m > 0 else math.nan for m in means], width, label=label)
        for x, m, row in zip(xs, means, rows):
            if m <= 0:
                text = "fixed" if row is not None and not row.adapted else "0"
                ax.annotate(text, (x, 0), xycoords=("data", "axes fraction"), ha="center",
                            va="bottom", fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("mean ||W_after - W_before|| (log scale)")
    ax.set_title(title or "inner-loop movement of the weights each layer uses", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def checkpoint_movement(
    path: str | Path,
    split: str = "test",
    n_tasks: int = 600,
    seed: int = 0,
    maml_steps: int | None = None,
    data_root: str | Path | None = None,
    device: torch.device | str = "cpu",
) -> MovementTable:
    """The movement table of the MAML checkpoint at ``path`` on ``n_tasks`` tasks of its own
    dataset and test shape (``maml_steps``: its test-time inner steps, default its own)."""
    ckpt = load_method(path, device)
    method, dc = ckpt.method, ckpt.config.data
    if not isinstance(method, MAML):
        raise ConfigError(
            f"{path} holds a {ckpt.meta['method']} model; the inner-loop movement is MAML's: "
            f"pass MAML checkpoints (plain or over a hyper backbone)"
        )
    method.set_test_steps(maml_steps)
    started = time.perf_counter()
    data = load_split(dc.dataset, split, data_root, **dc.load_options())
    layers = inner_loop_movement(method, data, dc.test_shape, n_tasks, seed)
    seconds = time.perf_counter() - started
    return MovementTable(str(path), ckpt.config.model.hyper, method.cfg.adapt,
                         method.eval().steps, n_tasks, seconds, layers)  # fmt: skip


def analyze_movement(
    paths: Sequence[str | Path],
    split: str = "test",
    n_tasks: int = 600,
    seed: int = 0,
    maml_steps: int | None = None,
    data_root: str | Path | None = None,
    device: str | None = None,
    plot: str | Path | None = None,
    log: Callable[[str], None] | None = print,
) -> dict:
    """``hypermaml analyze movement``: the movement table of each MAML checkpoint (the plain
    network first), their comparison (``log``-ged) and, given ``plot``, the grouped bar figure;
    returns the report."""
    if not paths:
        raise ConfigError("analyze movement needs MAML checkpoints: the plain network first")
    torch_device = pick_device(device)
    tables = [checkpoint_movement(p, split, n_tasks, seed, maml_steps, data_root, torch_device)
              for p in paths]  # fmt: skip
    if log:
        log(format_comparison(tables))
        log(f"({n_tasks} {split} tasks of seed {seed}, {torch_device}; mean over tasks of "
            f"||W_after - W_before|| per layer; seconds: "
            f"{', '.join(f'{t.seconds:.1f}' for t in tables)})")  # fmt: skip
    if plot:
        plot_movement(tables, plot)
    return {"tables": [asdict(t) for t in tables], "comparison": comparison_rows(tables),
            "split": split, "n_tasks": n_tasks, "seed": seed, "device": str(torch_device),
            "seconds": sum(t.seconds for t in tables)}  # fmt: skip
