"""Datasets as in-memory uint8 tensors, their files, and episode sampling."""

from ..errors import DataError
from .augment import DEFAULT_AUGMENT, Augment, batches, channel_stats
from .class_images import IMAGENET_NORMALISATION, ClassImages, Normalisation
from .classification import CLASSIFICATION_DATASETS, LabelledImages, load_classification
from .datasets import DATASETS, MIN_IMAGES_PER_CLASS, image_shape, load_split
from .episodes import EpisodeSampler, TaskBatch, TaskShape, check_episode_shape
from .files import data_dir
from .folder import FolderSpec
from .image_cache import SkippedImagesWarning
from .prepare import CheckReport, PrepareReport, check, prepare

__all__ = [
    "CLASSIFICATION_DATASETS",
    "DEFAULT_AUGMENT",
    "Augment",
    "LabelledImages",
    "batches",
    "channel_stats",
    "load_classification",
    "DATASETS",
    "IMAGENET_NORMALISATION",
    "MIN_IMAGES_PER_CLASS",
    "ClassImages",
    "CheckReport",
    "DataError",
    "EpisodeSampler",
    "FolderSpec",
    "Normalisation",
    "PrepareReport",
    "SkippedImagesWarning",
    "TaskBatch",
    "TaskShape",
    "check",
    "check_episode_shape",
    "data_dir",
    "image_shape",
    "load_split",
    "prepare",
]
