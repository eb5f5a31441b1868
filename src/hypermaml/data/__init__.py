"""Datasets as in-memory uint8 tensors, their files, and episode sampling."""

from ..errors import DataError
from .augment import DEFAULT_AUGMENT, Augment, batches, channel_stats
from .classification import CLASSIFICATION_DATASETS, LabelledImages, load_classification
from .datasets import DATASETS, ClassImages, image_shape, load_split
from .episodes import EpisodeSampler, TaskBatch, TaskShape, check_episode_shape
from .files import data_dir

__all__ = [
    "CLASSIFICATION_DATASETS",
    "DEFAULT_AUGMENT",
    "Augment",
    "LabelledImages",
    "batches",
    "channel_stats",
    "load_classification",
    "DATASETS",
    "ClassImages",
    "DataError",
    "EpisodeSampler",
    "TaskBatch",
    "TaskShape",
    "check_episode_shape",
    "data_dir",
    "image_shape",
    "load_split",
]
