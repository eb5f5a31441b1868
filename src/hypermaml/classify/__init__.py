"""Supervised training of plain and hyper residual networks (HyperResNets), ``hypermaml classify``.

``config`` is the run's typed config, ``train`` the SGD loop (generated-weight penalty, SWA),
``checkpoint`` writes and rebuilds classifier checkpoints, ``score`` measures their accuracy and
``export`` writes a HyperResNet as the plain network computing the same function.
"""

from .checkpoint import ClassifierCheckpoint, load_classifier
from .config import ClassifyConfig, load_classify_config
from .export import ExportReport, export_checkpoint
from .score import ClassifierScore, score_classifier
from .train import ClassifyResult, train_classifier

__all__ = [
    "ClassifierCheckpoint",
    "ClassifierScore",
    "ClassifyConfig",
    "ClassifyResult",
    "ExportReport",
    "export_checkpoint",
    "load_classifier",
    "load_classify_config",
    "score_classifier",
    "train_classifier",
]
