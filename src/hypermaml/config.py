"""Typed experiment configuration: dataclasses filled from YAML and ``--set key=value`` overrides.

A config is the single source of truth of a run: it is stored inside every checkpoint, so a
checkpoint can be rebuilt and evaluated without the YAML file that made it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


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


@dataclass
class ModelConfig:
    """The backbone (encoder) that turns an image into an embedding."""

    backbone: Literal["conv4", "conv4pool"] = "conv4"
    bn: Literal["transductive", "eval", "per_step"] = "transductive"
    """BatchNorm policy (SPEC 3): batch statistics per task and set; running statistics at test
    time; or running statistics and affine parameters per inner step (MAML++)."""


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
    adapt: Literal["all", "head"] = "all"
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


@dataclass
class ExperimentConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=HyperMAMLConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        return _build(cls, raw, "")


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
    """Read a few-shot YAML config (or start from the defaults when ``path`` is None) and apply
    overrides."""
    return load_typed(ExperimentConfig, path, overrides)


def load_typed(cls: type, path: str | Path | None, overrides: list[str] | None = None) -> Any:
    """Read a YAML file into the config dataclass ``cls`` (its defaults when ``path`` is None),
    after applying ``--set key=value`` overrides; unknown keys and wrong types are refused."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist; shipped ones are in configs/")
        raw = yaml.safe_load(path.read_text()) or {}
    else:
        raw = dataclasses.asdict(cls())
    return _build(cls, apply_overrides(raw, overrides or []), "")
