"""Episodic meta-training: the loop, its outer step, and starting from pre-trained weights."""

from .loop import TrainResult, train, training_sampler
from .step import meta_step

__all__ = ["TrainResult", "meta_step", "train", "training_sampler"]
