"""hypermaml: few-shot learning where a hypernetwork, not gradient descent, adapts the model.

The public API (``docs/architecture.md`` draws the layers beneath it):

- ``load``, ``evaluate_checkpoint``, ``train``, ``export``: what the commands do, in one call.
- ``load(name).adapt(images, labels)`` -> ``AdaptedTask`` (``predict``, ``predict_proba``,
  ``export_onnx``): a trained model on a person's own classes; ``Preprocess``: its input.
- ``load_config``, ``load_run_config``: typed configs from YAML files or shipped names.
- ``build_method`` and the methods ``HyperMAML``, ``MAML``, ``ProtoNet`` (``methods.base.Method``).
- ``TaskShape``, ``EpisodeSampler``, ``load_split``, ``evaluate``: tasks and the test protocol.
"""

from ._version import __version__
from .api import (
    Checkpoint,
    config_kind,
    evaluate_checkpoint,
    export,
    load,
    load_run_config,
    train,
)
from .classify import ClassifierCheckpoint, ClassifierScore, ClassifyConfig
from .config import ExperimentConfig, load_config, shipped_configs
from .data import EpisodeSampler, TaskBatch, TaskShape, load_split
from .data.preprocess import Preprocess
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    HypermamlError,
    MissingExtraError,
    TrainingError,
)
from .evaluation import EvalResult, FewShotScore, evaluate
from .inference import AdaptedTask, FewShotModel
from .methods import MAML, FewShotCheckpoint, HyperMAML, Method, ProtoNet, build_method

__all__ = [
    "MAML",
    "AdaptedTask",
    "FewShotModel",
    "Preprocess",
    "Checkpoint",
    "CheckpointError",
    "ClassifierCheckpoint",
    "ClassifierScore",
    "ClassifyConfig",
    "ConfigError",
    "DataError",
    "EpisodeSampler",
    "EvalResult",
    "ExperimentConfig",
    "FewShotCheckpoint",
    "FewShotScore",
    "HyperMAML",
    "HypermamlError",
    "Method",
    "MissingExtraError",
    "ProtoNet",
    "TaskBatch",
    "TaskShape",
    "TrainingError",
    "__version__",
    "build_method",
    "config_kind",
    "evaluate",
    "evaluate_checkpoint",
    "export",
    "load",
    "load_config",
    "load_run_config",
    "load_split",
    "shipped_configs",
    "train",
]
