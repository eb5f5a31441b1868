"""The test protocol (tasks from a seed, mean and 95% interval) and scoring a checkpoint."""

from .protocol import EvalResult, evaluate
from .score import FewShotScore
from .stats import mean_ci95

__all__ = ["EvalResult", "FewShotScore", "evaluate", "mean_ci95"]
