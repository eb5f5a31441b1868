"""The test protocol (tasks from a seed, mean and 95% interval) and timing."""

from .protocol import EvalResult, evaluate
from .stats import mean_ci95

__all__ = ["EvalResult", "evaluate", "mean_ci95"]
