"""Run scaffolding shared by both training loops: the run folder, resume, metric logs."""

from .folder import Resume, RunFolder, restore_training_state, run_checkpoint, training_state
from .logs import MetricLog

__all__ = [
    "MetricLog", "Resume", "RunFolder", "restore_training_state", "run_checkpoint",
    "training_state",
]  # fmt: skip
