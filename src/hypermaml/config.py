"""Typed experiment configuration: dataclasses filled from YAML and ``--set key=value`` overrides.

A config is the single source of truth of a run: it is stored inside every checkpoint, so a
checkpoint can be rebuilt and evaluated without the YAML file that made it. The configs of the
papers' experiments ship with the package (``hypermaml/configs/NAME.yaml``) and are named without
a path: ``load_config("omniglot_5w1s_hypermaml")``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .data.episodes import TaskShape
from .data.folder import FolderSpec
from .engine.device import device_name_problem
from .errors import ConfigError
from .models.config import ModelConfig

SHIPPED_CONFIGS = files("hypermaml") / "configs"
"""The YAML configs of the papers' experiments, one per row (package data)."""

BOUND = "bound"
"""Field metadata key: the ``Bound`` a numeric field's value (each item of a list) must meet."""
CHECK = "check"
"""Field metadata key: a function of the value returning what is wrong with it, or None."""


@dataclass(frozen=True)
class Bound:
    """The lowest value a numeric config field takes: ``low`` itself too, unless ``strict``."""

    low: float
    strict: bool = False

    def admits(self, value: float) -> bool:
        return value > self.low if self.strict else value >= self.low

    def describe(self) -> str:
        return f"{'>' if self.strict else '>='} {self.low:g}"


def bounded(default: Any, *, low: float, strict: bool = False) -> Any:
    """A dataclass field with ``default`` whose value must be >= ``low`` (> ``low`` when
    ``strict``): each item of a list, and anything but None where the type allows None."""
    metadata = {BOUND: Bound(low, strict)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def count(default: int | None, *, low: int = 1) -> Any:
    """An integer field counting something (epochs, tasks, steps): ``low`` (1) or more."""
    return bounded(default, low=low)


def positive(default: float) -> Any:
    """A float field (a learning rate, a decay factor) whose value must be > 0."""
    return bounded(default, low=0, strict=True)


def checked(default: Any, check: Callable[[Any], str | None]) -> Any:
    """A dataclass field with ``default`` whose value ``check`` accepts (returns None for)."""
    return field(default=default, metadata={CHECK: check})


@dataclass
class FolderConfig:
    """The ``folder`` dataset (``data.dataset: folder``): any tree ``ROOT/<class>/<image>``."""

    root: str | None = None
    """The folder of class folders (relative: under the data directory)."""
    split_file: str | None = None
    """A JSON ``{"train": [...], "val": [...], "test": [...]}`` of class names (relative: under
    ``root``); None splits the sorted classes by ``fractions`` with ``seed``."""
    fractions: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2])
    seed: int = 0
    size: int = count(84)
    """Images are ``size`` x ``size``."""
    channels: Literal["auto", "rgb", "grey"] = "auto"
    resize_ratio: float = bounded(8 / 7, low=1)
    """The shorter side is resized to ``round(size * resize_ratio)``, then centre-cropped; 1 keeps
    the whole image when it is square."""


@dataclass
class DataConfig:
    """Which tasks a run sees: the dataset and the N-way K-shot protocol."""

    dataset: str = "omniglot"
    n_way: int = count(5)
    n_shot: int = count(1)
    n_query: int = count(16)
    """Query images per class in training tasks."""
    n_query_test: int = count(15)
    """Query images per class in validation and test tasks."""
    train_n_way: int | None = count(None, low=2)
    """Classes of training tasks when they differ from ``n_way`` (ProtoNet's higher-way
    episodes: Snell et al. train on 60-way Omniglot tasks and test on 5- and 20-way ones); None:
    ``n_way``. Only a method without an N-way head (ProtoNet) can train on other ways."""
    train_stroke: float = bounded(0.0, low=0)
    """Training images only: thicken each image's strokes by a random 0..train_stroke pixels
    (handwriting; ``data/strokes.py``). 0 leaves the images as they are (the papers' setup)."""
    train_zoom: float = bounded(1.0, low=1)
    """Training images only: centre each character on its ink and enlarge it by a random factor
    in [1, train_zoom] (handwriting; ``data/framing.py``). 1 leaves the images as they are."""
    train_aug: bool = False
    """Training images only: random resized crop, colour jitter 0.4 and horizontal flip
    (natural images; ``data/photo_augment.py``, needs ``hypermaml[images]``)."""
    source: str | None = None
    """Where the images of ``cub`` or ``mini_imagenet`` are, when not in their standard places
    under the data directory (docs/data.md)."""
    skip_bad_images: bool = False
    """Leave out unreadable images (and empty classes of a ``folder``) with a warning and a count,
    instead of refusing them."""
    folder: FolderConfig = field(default_factory=FolderConfig)

    def load_options(self) -> dict[str, Any]:
        """The keywords of ``data.load_split`` this config sets."""
        folder = None
        if self.dataset == "folder":
            if self.folder.root is None:
                raise ConfigError("data.dataset=folder needs data.folder.root: the class folders")
            folder = FolderSpec(**dataclasses.asdict(self.folder),
                                skip_bad_images=self.skip_bad_images)  # fmt: skip
        return {"folder": folder, "source": self.source, "skip_bad_images": self.skip_bad_images}

    @property
    def train_shape(self) -> TaskShape:
        """The shape of training tasks (``n_query`` queries per class)."""
        return TaskShape(self.train_n_way or self.n_way, self.n_shot, self.n_query)

    @property
    def test_shape(self) -> TaskShape:
        """The shape of validation and test tasks (``n_query_test`` queries per class)."""
        return TaskShape(self.n_way, self.n_shot, self.n_query_test)


@dataclass
class ProtoNetConfig:
    name: Literal["protonet"] = "protonet"


@dataclass
class MAMLConfig:
    name: Literal["maml"] = "maml"
    inner_steps: int = count(5)
    inner_lr: float = positive(0.4)
    inner_steps_test: int | None = count(None, low=0)
    """Steps at evaluation time; None means the same as ``inner_steps``; 0 scores the
    meta-learnt weights unadapted."""
    first_order: bool = False
    adapt: Literal["all", "head", "embeddings"] = "all"
    """Which parameters the inner loop changes: all, the linear head, or the layer embeddings of
    a hyper backbone and the head (MAML with HyperResNets: the hypernetworks are learnt in the
    outer loop only)."""
    batching: Literal["auto", "loop", "vmap"] = "auto"
    """How the tasks of a batch are adapted: one after another (``loop``), or all at once with
    ``torch.func.vmap`` (``vmap``); ``auto`` takes the faster on the device (docs/performance.md).
    The results are identical."""


@dataclass
class HyperMAMLConfig:
    name: Literal["hypermaml"] = "hypermaml"
    hn_depth: int = count(3)
    """Linear layers of the hypernetwork (ReLU between consecutive ones)."""
    hn_width: int = count(512)
    enhancement: bool = True
    """Feed the universal classifier's predictions and the one-hot labels to the hypernetwork."""
    warmup_epochs: int = count(50, low=0)
    """W: epochs in which the classifier adapts by MAML only."""
    switch_epochs: int = count(500, low=0)
    """S: epochs over which the update moves linearly from MAML to the hypernetwork."""
    warmup_inner_lr: float = positive(0.1)
    warmup_inner_steps: int = count(1)


MethodConfig = ProtoNetConfig | MAMLConfig | HyperMAMLConfig
METHOD_CONFIGS: dict[str, type] = {
    "protonet": ProtoNetConfig,
    "maml": MAMLConfig,
    "hypermaml": HyperMAMLConfig,
}


@dataclass
class TrainConfig:
    epochs: int = count(100)
    episodes_per_epoch: int = count(100)
    """Tasks per epoch (an "episode" is one task)."""
    meta_batch: int = count(4)
    """Tasks per outer optimisation step."""
    tasks_per_pass: int | None = count(None)
    """Tasks of one forward and backward pass: each task worker accumulates the meta-gradient of
    its share of the meta-batch pass by pass, so at most workers * tasks_per_pass tasks'
    activations are held at once (the same gradient up to float rounding). None: a worker's
    whole share at once (fastest; 84x84 images may want 1)."""
    lr: float = positive(1e-3)
    milestones: list[int] = bounded([], low=1)
    """Epochs after which the learning rate is multiplied by ``gamma``."""
    gamma: float = positive(0.3)
    val_tasks: int = count(200)
    val_every: int = count(1)
    """Validate (and consider a new ``best``) every this many epochs, and after the last one."""
    seed: int = 0
    device: str = checked("auto", device_name_problem)
    threads: int | None = count(None)
    """CPU worker threads, each running whole tasks on one core (default: PyTorch's count)."""
    deterministic: bool = True
    """Pin the convolution kernels (no timing), so that the same config, machine and thread count
    give bit-identical weights and a resumed run continues bit-identically; False lets the engine
    time kernels and take the fastest (faster on some shapes, not reproducible)."""
    task_stream: Literal["keyed", "sequential"] = "keyed"
    """How training tasks are drawn. ``keyed``: task i of step s from its own generator seeded by
    (seed, s, i), so the tasks of a step are the same on any number of processes (torchrun) and
    a resume needs no generator state. ``sequential``: one generator for the whole run (runs
    written before the keyed stream; one process only)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Arithmetic of the forward and backward passes (``torch.autocast``; fp16 with a gradient
    scaler). Weights, optimiser state and the meta-loss stay float32."""

    def __post_init__(self) -> None:
        if self.episodes_per_epoch < self.meta_batch:
            raise ConfigError(
                f"train.episodes_per_epoch={self.episodes_per_epoch} is fewer than one "
                f"meta-batch (train.meta_batch={self.meta_batch}); raise it or lower meta_batch"
            )


class RootConfig:
    """A whole run's config: plain data for the checkpoint, and back with every check."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], complete: bool = False) -> Any:
        """The config ``raw`` describes, every value checked. Absent keys take their defaults,
        unless ``complete``: then every section and field must be present (a config stored in
        a checkpoint is whole, so a missing key means it was written by another version)."""
        if complete and (missing := missing_keys(cls, raw)):
            raise ConfigError(
                f"config is incomplete: missing {', '.join(missing)}; a stored config names every "
                f"field (write it with to_dict())"
            )
        return _build(cls, raw, "")


@dataclass
class ExperimentConfig(RootConfig):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=HyperMAMLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        ways = self.data.train_n_way
        if ways not in (None, self.data.n_way) and self.method.name != "protonet":
            raise ConfigError(
                f"data.train_n_way={ways} differs from data.n_way={self.data.n_way}, but "
                f"{self.method.name}'s classifier has data.n_way outputs; only protonet trains on "
                f"other ways (leave data.train_n_way null, or train a {ways}-way model with "
                f"data.n_way={ways})"
            )


def _check_value(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_value(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    if dataclasses.is_dataclass(raw):
        raw = dataclasses.asdict(raw)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    if cls is ExperimentConfig and "method" in raw:
        raw = dict(raw)
        method = raw["method"]
        name = method.get("name") if isinstance(method, dict) else None
        if name not in METHOD_CONFIGS:
            raise ConfigError(f"method.name: {name!r} is not one of {sorted(METHOD_CONFIGS)}")
        raw["method"] = _build(METHOD_CONFIGS[name], method, "method")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(fields)}"
        )
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            kwargs[key] = value
        else:
            kwargs[key] = _check_field(fields[key], _check_value(hints[key], value, path), path)
    return cls(**kwargs)


def _check_field(f: dataclasses.Field, value: Any, where: str) -> Any:
    """``value``, typed already, refused unless the field's own check (``checked``) and bound
    (``bounded``, ``count``, ``positive``) accept it; None (where the type allows it) passes."""
    check = f.metadata.get(CHECK)
    if check is not None and value is not None and (problem := check(value)):
        raise ConfigError(f"{where}={value!r}: {problem}")
    bound = f.metadata.get(BOUND)
    if bound is None or value is None:
        return value
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not bound.admits(item):
            name = f"{where}[{i}]" if isinstance(value, list) else where
            what = "each item" if isinstance(value, list) else "it"
            raise ConfigError(
                f"{name}={item!r} is out of range: {what} must be {bound.describe()}"
                f"{_default_hint(f)}"
            )
    return value


def _default_hint(f: dataclasses.Field) -> str:
    """`` (the default is X)`` for a field with a plain default, else nothing."""
    if f.default is dataclasses.MISSING:
        return ""
    return " (or null: the default)" if f.default is None else f" (the default is {f.default!r})"


def _section_class(cls: type, key: str, value: Any) -> type | None:
    """The dataclass of the section ``key`` of ``cls`` holding ``value`` (for the method section,
    the class its ``name`` picks), or None for a plain field or a method of unknown name."""
    if cls is ExperimentConfig and key == "method":
        return METHOD_CONFIGS.get(value.get("name")) if isinstance(value, dict) else None
    tp = typing.get_type_hints(cls)[key]
    return tp if dataclasses.is_dataclass(tp) else None


def missing_keys(cls: type, raw: Any, where: str = "") -> list[str]:
    """The dotted names (``data.dataset``, ``method.hn_width``) of the sections and fields of the
    config class ``cls`` that the mapping ``raw`` lacks, every section searched (a method section
    against the class its ``name`` picks). A value that is no mapping lacks nothing here:
    ``from_dict`` refuses it with its own message."""
    if not isinstance(raw, dict):
        return []
    missing = []
    for f in dataclasses.fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in raw:
            missing.append(path)
            continue
        value = raw[f.name]
        section = _section_class(cls, f.name, value)
        if section is not None:
            missing += missing_keys(section, value, path)
        elif f.name == "method" and isinstance(value, dict) and "name" not in value:
            missing.append(f"{path}.name")  # without a name, the method's fields are unknown
    return missing


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a raw config mapping; values are parsed as YAML.

    ``method.name=OTHER`` switches the method: the method section restarts from OTHER's
    defaults (the old method's fields would not fit it), and later ``method.*`` overrides
    apply on top."""
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. method.hn_width=256")
        key, text = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        value = yaml.safe_load(text)
        if parts == ["method", "name"] and raw["method"].get("name") != value:
            node = raw["method"] = {}
        node[parts[-1]] = value
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a few-shot YAML config (a file, or the name of a shipped one; the defaults when
    ``path`` is None) and apply overrides."""
    return load_typed(ExperimentConfig, path, overrides)


def shipped_configs() -> dict[str, str]:
    """Name -> first comment line of every config shipped with the package."""
    out = {}
    for entry in sorted(SHIPPED_CONFIGS.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            lines = entry.read_text().splitlines() or [""]
            out[entry.name.removesuffix(".yaml")] = lines[0].lstrip("# ").strip()
    return out


def config_file(path: str | Path) -> Path | Traversable:
    """The file a config argument names: a YAML file, or a shipped config's name
    (``omniglot_5w1s_hypermaml``, with or without ``.yaml``)."""
    candidate = Path(path)
    if candidate.is_file():
        return candidate
    name = str(path).removesuffix(".yaml")
    if "/" not in name and "\\" not in name:
        shipped = SHIPPED_CONFIGS / f"{name}.yaml"
        if shipped.is_file():
            return shipped
    raise ConfigError(
        f"config {str(path)!r} is neither a file nor a shipped config; `hypermaml configs` lists "
        f"the shipped ones (name them without a path, e.g. omniglot_5w1s_hypermaml)"
    )


def read_raw(path: str | Path) -> dict[str, Any]:
    """The mapping of a YAML config file or shipped config name, unchecked."""
    file = config_file(path)
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {raw!r}")
    return raw


def load_typed(cls: type, path: str | Path | None, overrides: list[str] | None = None) -> Any:
    """Read a YAML file or shipped config into the config dataclass ``cls`` (its defaults when
    ``path`` is None), after applying ``--set key=value`` overrides; unknown keys and wrong types
    are refused."""
    raw = read_raw(path) if path is not None else dataclasses.asdict(cls())
    return _build(cls, apply_overrides(raw, overrides or []), "")
