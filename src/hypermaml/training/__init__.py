"""Meta-training: the episodic loop, checkpoints and logs."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .trainer import TrainingError, TrainResult, pick_device, train

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "TrainResult",
    "TrainingError",
    "load_checkpoint",
    "pick_device",
    "save_checkpoint",
    "train",
]
