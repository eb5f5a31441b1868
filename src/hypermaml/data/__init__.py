"""Datasets as in-memory uint8 tensors, their files, and episode sampling."""

from .datasets import DATASETS, ClassImages, load_split
from .episodes import EpisodeSampler, TaskBatch, check_episode_shape
from .files import DataError, data_dir

__all__ = [
    "DATASETS",
    "ClassImages",
    "DataError",
    "EpisodeSampler",
    "TaskBatch",
    "check_episode_shape",
    "data_dir",
    "load_split",
]
