"""Speed benchmark: training episodes per second and test tasks per second, with peak memory.

Every method is measured on the same tasks of a synthetic split with the shape of the real one
(speed does not depend on what the pixels show, and the benchmark needs no data files). Each
measurement runs in a fresh process, so peak memory is that phase's own and no allocator or
thread-pool state leaks from one method to the next.
"""

from __future__ import annotations

import math
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

import torch

from ..config import (  # FolderConfig: the inherited field's annotation, for the API reference
    DataConfig,
    ExperimentConfig,
    FolderConfig,  # noqa: F401
    HyperMAMLConfig,
    MAMLConfig,
    MethodConfig,
    ProtoNetConfig,
    TrainConfig,
)
from ..data.natural import NATURAL_IMAGE_SHAPES, NATURAL_MIN_IMAGES, NATURAL_N_CLASSES
from ..errors import ConfigError
from ..models.config import ModelConfig
from .environment import environment

if TYPE_CHECKING:
    from ..data import ClassImages
    from ..engine.parallel import TaskParallel
    from ..methods import Method

SHAPES = {
    "omniglot": (4112, 20, 1, 28, 28),
    "cross_char": (1597, 20, 1, 28, 28),
    **{
        name: (NATURAL_N_CLASSES[name, "train"], NATURAL_MIN_IMAGES[name, "train"], *shape)
        for name, shape in NATURAL_IMAGE_SHAPES.items()
    },
}
"""(classes, images per class, C, H, W) of each dataset's training split."""
SYNTHETIC_PER_CLASS = 64
"""At most this many images per class in the synthetic split: a task draws at most 5 + 16 per
class, and a natural-image set (mini-ImageNet: 600 per class, 0.8 GB) is read from a
memory-mapped cache in training, so holding all of it in memory would only inflate the peak."""
FLOOR_BACKBONES = ("conv4", "conv4pool")
"""Backbones whose convolution FLOPs ``floor.py`` counts (the floor fractions of the others are
left empty)."""


@dataclass
class BenchCase:
    """One method configuration to time."""

    name: str
    method: MethodConfig


@dataclass
class BenchSettings(DataConfig):
    """The tasks to time (DataConfig's fields) and how to time them."""

    meta_batch: int = 4
    tasks_per_pass: int | None = None
    """Tasks of one forward and backward pass in training (``TrainConfig.tasks_per_pass``)."""
    train_episodes: int = 200
    """Timed training episodes per method (after ``warmup_steps`` untimed outer steps)."""
    eval_tasks: int = 600
    eval_batch: int = 8
    warmup_steps: int = 3
    device: str = "auto"
    threads: int | None = None
    task_parallel: bool = True
    """Split tasks over ``threads`` single-threaded workers (else: intra-op threads only)."""
    n_classes: int | None = None
    """Classes of the synthetic split (default: the real split's)."""
    image_size: int | None = None
    """Image side (default: the real dataset's)."""
    phases: tuple[str, ...] = ("train", "eval")
    deterministic: bool = False
    """Convolution kernels by ``engine.kernels``' pinned rule instead of timed (its speed cost)."""
    backbone: str = "conv4"
    """The encoder (``models/backbones.py``), the same for every method."""
    hyper: str = "none"
    """Plain convolutions, or generated ones (``stage``: variant 1, ``layer``: variant 2)."""
    precision: str = "fp32"
    """Arithmetic of the forward and backward passes (``TrainConfig.precision``)."""

    def __post_init__(self) -> None:
        if self.dataset not in SHAPES:
            raise ConfigError(
                f"bench has no shape for dataset {self.dataset!r}; choose one of "
                f"{', '.join(SHAPES)}"
            )


@dataclass
class BenchRow:
    case: str
    method: str
    device: str
    threads: int
    train_episodes_per_s: float | None = None
    train_peak_mb: float | None = None
    eval_tasks_per_s: float | None = None
    eval_seconds: float | None = None
    """Seconds for all ``eval_tasks`` tasks, adaptation plus prediction (sampling excluded)."""
    eval_peak_mb: float | None = None
    train_floor_fraction: float | None = None
    """The floor's training time over the measured one (``floor.py``): 1 is the floor."""
    eval_floor_fraction: float | None = None
    extra: dict = field(default_factory=dict)


def default_cases(maml_steps: tuple[int, ...] = (1, 5), batching: str = "auto") -> list[BenchCase]:
    """HyperMAML (hypernetwork mode), MAML with each step count (second order), ProtoNet."""
    cases = [BenchCase("hypermaml", HyperMAMLConfig(warmup_epochs=0, switch_epochs=0))]
    modes = ("loop", "vmap") if batching == "both" else (batching,)
    for k in maml_steps:
        for mode in modes:
            label = f"maml-{k}" + (f" ({mode})" if len(modes) > 1 else "")
            cases.append(BenchCase(label, MAMLConfig(inner_steps=k, inner_lr=0.4, batching=mode)))
    cases.append(BenchCase("protonet", ProtoNetConfig()))
    return cases


def select_cases(
    methods: str | None = None, maml_steps: tuple[int, ...] = (1, 5), batching: str = "auto"
) -> list[BenchCase]:
    """The cases ``methods`` names (a comma list of hypermaml, maml, maml-K, protonet; None:
    all) among ``default_cases``."""
    wanted = methods.split(",") if methods else None
    cases = [
        c for c in default_cases(maml_steps, batching)
        if wanted is None or c.name.split(" ")[0] in wanted or c.name.split("-")[0] in wanted
    ]  # fmt: skip
    if not cases:
        raise ConfigError(f"--methods {methods!r} selects no method")
    return cases


def _config(case: BenchCase, s: BenchSettings) -> ExperimentConfig:
    return ExperimentConfig(
        data=DataConfig(**{f.name: getattr(s, f.name) for f in fields(DataConfig)}),
        model=ModelConfig(s.backbone, hyper=s.hyper),  # type: ignore[arg-type]
        method=case.method,
        train=TrainConfig(meta_batch=s.meta_batch, device=s.device),
    )


def synthetic_split(s: BenchSettings, seed: int = 0):
    """A ClassImages of random uint8 images with the shape of the dataset's training split (at
    most ``SYNTHETIC_PER_CLASS`` images per class)."""
    from ..data import ClassImages

    classes, per_class, channels, height, width = SHAPES[s.dataset]
    classes = s.n_classes or classes
    per_class = min(per_class, SYNTHETIC_PER_CLASS)
    height = width = s.image_size or height
    g = torch.Generator().manual_seed(seed)
    shape = (classes, per_class, channels, height, width)
    images = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    names = [str(i) for i in range(classes)]
    return ClassImages(s.dataset, "synthetic", images, names)


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak_kb / (2**20 if sys.platform == "darwin" else 2**10)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(case: BenchCase, s: BenchSettings, phase: str) -> dict:
    """Time one phase (``train`` or ``eval``) of one case, in the current process, with the
    kernels pinned or timed as ``s.deterministic`` says (the previous setting restored)."""
    from ..engine import kernels

    with kernels.deterministic(s.deterministic):
        out = _measure(case, s, phase)
    out["extra"]["deterministic"] = s.deterministic
    out["extra"][f"{phase}_kernels"] = kernels.chosen_kernels()
    return out


def _measure(case: BenchCase, s: BenchSettings, phase: str) -> dict:
    """``measure`` with the kernel setting in force."""
    from ..engine import TaskParallel, keep_freed_memory, pick_device
    from ..engine.distributed import current_world, world_device
    from ..methods import build_method

    keep_freed_memory()  # as the command line does
    if s.threads:
        torch.set_num_threads(s.threads)
    world = current_world()
    device = pick_device(world_device(s.device, world))
    data = synthetic_split(s)
    torch.manual_seed(0)
    method = build_method(_config(case, s), data.image_shape).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    out: dict = {"threads": torch.get_num_threads(), "device": str(device)}
    parallel = TaskParallel.for_device(device) if s.task_parallel else TaskParallel(1)
    hyper = "" if s.hyper == "none" else f" (hyper {s.hyper})"
    out["extra"] = {
        "task_workers": parallel.workers,
        "encoder": f"{s.backbone}{hyper} on {'x'.join(map(str, data.image_shape))} images",
        "precision": s.precision,
        "processes": world.size,
    }
    with parallel:
        timed = _timed_phase(method, data, s, phase, device, parallel)
    out["extra"].update(timed.pop("extra", {}))
    out.update(timed)
    return out


def _timed_phase(
    method: Method,
    data: ClassImages,
    s: BenchSettings,
    phase: str,
    device: torch.device,
    parallel: TaskParallel,
) -> dict:
    """The timings of ``measure`` with the method built and the worker pool open."""
    from ..data import EpisodeSampler
    from ..engine.distributed import current_world
    from ..engine.precision import Precision
    from ..evaluation import evaluate
    from ..training.step import meta_step

    out: dict = {}
    world, precision = current_world(), Precision(s.precision, device)
    if phase == "train":
        method.train()
        optimizer = torch.optim.Adam(method.parameters(), lr=1e-4)
        sampler = EpisodeSampler(data, s.train_shape, seed=0)
        share = world.share(s.meta_batch)  # this process's tasks of every step

        def step(i: int) -> None:
            batch = sampler.sample_keyed(i, share).to(device)
            meta_step(method, optimizer, batch, parallel, s.tasks_per_pass, precision, world,
                      s.meta_batch, check_finite=device.type != "cuda")  # fmt: skip

        for i in range(s.warmup_steps):
            step(i)
        steps = max(1, math.ceil(s.train_episodes / s.meta_batch))
        _sync(device)
        start = time.perf_counter()
        for i in range(steps):  # sampling included: it is part of what training costs
            step(s.warmup_steps + i)
        _sync(device)
        seconds = world.max(time.perf_counter() - start)
        out["train_episodes_per_s"] = steps * s.meta_batch / seconds
        out["train_peak_mb"] = _peak_mb(device)
        if world.distributed:
            out["extra"] = _communication(method, world, seconds / steps)
    else:
        warm = min(s.eval_tasks, 2 * s.eval_batch)
        evaluate(method, data, s.test_shape, warm, 1, s.eval_batch, parallel, world, precision)
        result = evaluate(method, data, s.test_shape, s.eval_tasks, 0, s.eval_batch, parallel,
                          world, precision)  # fmt: skip
        out["eval_seconds"] = result.seconds_per_task * result.n_tasks
        out["eval_tasks_per_s"] = 1.0 / result.seconds_per_task
        out["eval_peak_mb"] = _peak_mb(device)
    return out


def _communication(method: Method, world, step_seconds: float, repeats: int = 20) -> dict:
    """The all-reduce of one step's meta-gradient, timed alone: its bytes, seconds, and share
    of the measured step time."""
    grads = [torch.zeros_like(p) for p in method.parameters() if p.requires_grad]
    grads.append(torch.zeros(2, device=grads[0].device))  # the loss and accuracy ride along
    world.all_reduce_sum_(grads)  # warm the connections
    _sync(grads[0].device)
    start = time.perf_counter()
    for _ in range(repeats):
        world.all_reduce_sum_(grads)
    _sync(grads[0].device)
    seconds = world.max((time.perf_counter() - start) / repeats)
    return {
        "gradient_mb": sum(g.numel() * g.element_size() for g in grads) / 2**20,
        "allreduce_ms": 1000 * seconds,
        "communication_share": seconds / step_seconds,
    }


def measure_reference(s: BenchSettings) -> float:
    """The GEMM rate (GFLOP/s) with the benchmark's threads and device, in this process."""
    from ..engine.device import pick_device
    from .floor import gemm_gflops

    if s.threads:
        torch.set_num_threads(s.threads)
    return gemm_gflops(pick_device(s.device))


def _run(isolate: bool, fn, *args):
    if not isolate:
        return fn(*args)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def run_bench(
    cases: list[BenchCase], settings: BenchSettings, isolate: bool = True, log=print
) -> tuple[list[BenchRow], list[float]]:
    """Measure every case; ``isolate`` runs each phase in a fresh process. Returns the rows and
    the reference GEMM rates (GFLOP/s) taken before and after them."""
    from ..engine.distributed import current_world

    isolate = isolate and not current_world().distributed  # the ranks' group is this process's
    reference = [_run(isolate, measure_reference, settings)]
    rows = []
    for case in cases:
        row = BenchRow(case.name, case.method.name, "", 0)
        for phase in settings.phases:
            result = _run(isolate, measure, case, settings, phase)
            row.device, row.threads = result.pop("device"), result.pop("threads")
            row.extra.update(result.pop("extra"))
            for key, value in result.items():
                setattr(row, key, value)
        rows.append(row)
        if log:
            log(format_table([row], header=len(rows) == 1))
    reference.append(_run(isolate, measure_reference, settings))
    for row in rows:
        _set_floor_fractions(row, settings, max(reference))
    return rows, reference


def _set_floor_fractions(row: BenchRow, s: BenchSettings, gflops: float) -> None:
    from .floor import floor_seconds, task_flops

    if s.backbone not in FLOOR_BACKBONES or s.hyper != "none":
        return
    _, _, channels, side, _ = SHAPES[s.dataset]
    side = s.image_size or side
    if row.train_episodes_per_s:
        images = s.n_way * (s.n_shot + s.n_query)
        floor = floor_seconds(task_flops(side, images, channels, training=True), gflops)
        row.train_floor_fraction = floor * row.train_episodes_per_s
    if row.eval_tasks_per_s:
        images = s.n_way * (s.n_shot + s.n_query_test)
        row.eval_floor_fraction = floor_seconds(task_flops(side, images, channels), gflops) * (
            row.eval_tasks_per_s
        )


def format_table(rows: list[BenchRow], header: bool = True) -> str:
    def num(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = []
    if header:
        lines.append(
            f"{'method':<18} {'train ep/s':>10} {'train MB':>9} {'eval tasks/s':>12} "
            f"{'eval s':>8} {'eval MB':>8} {'train/floor':>11} {'eval/floor':>10}"
        )
    for r in rows:
        lines.append(
            f"{r.case:<18} {num(r.train_episodes_per_s, 2):>10} {num(r.train_peak_mb, 0):>9} "
            f"{num(r.eval_tasks_per_s):>12} {num(r.eval_seconds, 2):>8} {num(r.eval_peak_mb, 0):>8}"
            f" {num(r.train_floor_fraction, 2):>11} {num(r.eval_floor_fraction, 2):>10}"
        )
    return "\n".join(lines)


def ratios(rows: list[BenchRow], of: str = "hypermaml") -> dict[str, float]:
    """Time of ``of`` over each other case's, per phase: below 1 means ``of`` is faster."""
    by_case = {r.case: r for r in rows}
    if of not in by_case:
        return {}
    base, out = by_case[of], {}
    for r in rows:
        if r is base:
            continue
        if base.eval_seconds and r.eval_seconds:
            out[f"eval time {of} / {r.case}"] = base.eval_seconds / r.eval_seconds
        if base.train_episodes_per_s and r.train_episodes_per_s:
            out[f"train time {of} / {r.case}"] = r.train_episodes_per_s / base.train_episodes_per_s
    return out


def format_ratios(values: dict[str, float]) -> str:
    return "\n".join(f"{name}: {value:.2f}" for name, value in values.items())


def summary(rows: list[BenchRow], reference: list[float]) -> str:
    """The table of every case, the machine it ran on, and HyperMAML's time ratios."""
    workers = rows[0].extra.get("task_workers", 1)
    pinned = "pinned (deterministic)" if rows[0].extra.get("deterministic") else "timed"
    gemm = " / ".join(f"{g:.0f}" for g in reference)
    text = (
        f"{format_table(rows)}\n({rows[0].extra.get('encoder', '')}; {rows[0].device}, "
        f"{rows[0].threads} threads, {workers} task "
        f"worker{'s' if workers > 1 else ''}, kernels {pinned}; reference float32 GEMM {gemm} "
        f"GFLOP/s before / after; floor: the convolutions' FLOPs at that rate)"
    )
    extra = rows[0].extra
    if extra.get("precision", "fp32") != "fp32":
        text += f"\n(forward and backward passes in {extra['precision']})"
    for row in rows:
        if "allreduce_ms" in row.extra:
            x = row.extra
            text += (
                f"\n{row.case}: {x['processes']} processes, each step's all-reduce of "
                f"{x['gradient_mb']:.2f} MB takes {x['allreduce_ms']:.2f} ms, "
                f"{100 * x['communication_share']:.1f}% of a step"
            )
    if ratio_text := format_ratios(ratios(rows)):
        text += "\n" + ratio_text
    return text


def report(rows: list[BenchRow], settings: BenchSettings, reference: list[float]) -> dict:
    return {
        "settings": asdict(settings),
        "environment": environment(),
        "reference_gemm_gflops": reference,
        "rows": [asdict(r) for r in rows],
        "ratios": ratios(rows),
    }
