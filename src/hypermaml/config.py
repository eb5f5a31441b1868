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
from dataclasses import dataclass, field
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from .data.episodes import TaskShape
from .errors import ConfigError
from .models.config import ModelConfig

SHIPPED_CONFIGS = files("hypermaml") / "configs"
"""The YAML configs of the papers' experiments, one per row (package data)."""


@dataclass
class DataConfig:
    """Which tasks a run sees: the dataset and the N-way K-shot protocol."""

    dataset: str = "omniglot"
    n_way: int = 5
    n_shot: int = 1
    n_query: int = 16
    """Query images per class in training tasks."""
    n_query_test: int = 15
    """Query images per class in validation and test tasks."""
    train_stroke: float = 0.0
    """Training images only: thicken each image's strokes by a random 0..train_stroke pixels
    (handwriting; ``data/strokes.py``). 0 leaves the images as they are (the papers' setup)."""
    train_zoom: float = 1.0
    """Training images only: centre each character on its ink and enlarge it by a random factor
    in [1, train_zoom] (handwriting; ``data/framing.py``). 1 leaves the images as they are."""

    @property
    def train_shape(self) -> TaskShape:
        """The shape of training tasks (``n_query`` queries per class)."""
        return TaskShape(self.n_way, self.n_shot, self.n_query)

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
    inner_steps: int = 5
    inner_lr: float = 0.4
    inner_steps_test: int | None = None
    """Steps at evaluation time; None means the same as ``inner_steps``."""
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
    hn_depth: int = 3
    """Linear layers of the hypernetwork (ReLU between consecutive ones)."""
    hn_width: int = 512
    enhancement: bool = True
    """Feed the universal classifier's predictions and the one-hot labels to the hypernetwork."""
    warmup_epochs: int = 50
    """W: epochs in which the classifier adapts by MAML only."""
    switch_epochs: int = 500
    """S: epochs over which the update moves linearly from MAML to the hypernetwork."""
    warmup_inner_lr: float = 0.1
    warmup_inner_steps: int = 1


MethodConfig = ProtoNetConfig | MAMLConfig | HyperMAMLConfig
METHOD_CONFIGS: dict[str, type] = {
    "protonet": ProtoNetConfig,
    "maml": MAMLConfig,
    "hypermaml": HyperMAMLConfig,
}


@dataclass
class TrainConfig:
    epochs: int = 100
    episodes_per_epoch: int = 100
    """Tasks per epoch (an "episode" is one task)."""
    meta_batch: int = 4
    """Tasks per outer optimisation step."""
    lr: float = 1e-3
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.3
    val_tasks: int = 200
    val_every: int = 1
    """Validate (and consider a new ``best``) every this many epochs, and after the last one."""
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    """CPU worker threads, each running whole tasks on one core (default: PyTorch's count)."""


class RootConfig:
    """A whole run's config: plain data for the checkpoint, and back with every check."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Any:
        return _build(cls, raw, "")


@dataclass
class ExperimentConfig(RootConfig):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=HyperMAMLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ConfigError(
            f"{where or 'config'}: unknown key(s) {sorted(unknown)}; valid keys: {sorted(names)}"
        )
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            kwargs[key] = value
        else:
            kwargs[key] = _check_value(hints[key], value, path)
    return cls(**kwargs)


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
