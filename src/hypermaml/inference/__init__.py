"""A trained model used on a person's own classes: adaptation to a support set and prediction
(``task.py``), and ``hypermaml predict`` (``predict.py``); the input transform is
``data/preprocess.py``'s."""

from ..data.preprocess import Preprocess
from .task import AdaptedTask, FewShotModel, adapt

__all__ = ["AdaptedTask", "FewShotModel", "Preprocess", "adapt"]
