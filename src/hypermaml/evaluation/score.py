"""The score of a few-shot checkpoint: the test protocol's result with what was scored."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..data import TaskShape
from ..methods import FewShotCheckpoint
from .protocol import EvalResult


@dataclass
class FewShotScore:
    """A few-shot checkpoint's accuracy on ``n_tasks`` tasks of one split, drawn from ``seed``."""

    accuracy: float
    """Mean query accuracy over the tasks, in percent."""
    ci95: float
    """Half-width of the 95% confidence interval, in percent."""
    n_tasks: int
    seconds_per_task: float
    method: str
    dataset: str
    split: str
    n_way: int
    n_shot: int
    n_query: int
    seed: int
    bn: str
    """The encoder's BatchNorm policy (recorded with every result)."""
    checkpoint: str
    device: str
    precision: str = "fp32"
    """The arithmetic of the forward passes (``engine.precision``)."""
    task_accuracies: list[float] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        """The JSON report (``hypermaml eval --json``), without the per-task accuracies."""
        out = asdict(self)
        out.pop("task_accuracies")
        return out

    @classmethod
    def of(
        cls, result: EvalResult, ckpt: FewShotCheckpoint, dataset: str, split: str,
        shape: TaskShape, seed: int, precision: str = "fp32",
    ) -> FewShotScore:  # fmt: skip
        """The score of ``ckpt`` whose ``evaluate`` on ``split`` of ``dataset`` gave ``result``."""
        device = str(next(ckpt.method.parameters()).device)
        return cls(
            result.accuracy, result.ci95, result.n_tasks, result.seconds_per_task,
            ckpt.meta["method"], dataset, split, shape.n_way, shape.n_shot, shape.n_query, seed,
            ckpt.config.model.bn, str(ckpt.path), device, precision, result.task_accuracies,
        )  # fmt: skip

    def describe(self) -> str:
        return (
            f"{self.method} on {self.dataset}/{self.split} {self.n_way}-way {self.n_shot}-shot: "
            f"{self.accuracy:.2f} ± {self.ci95:.2f}% over {self.n_tasks} tasks (seed {self.seed}), "
            f"{1000 * self.seconds_per_task:.1f} ms per task"
            + ("" if self.precision == "fp32" else f" ({self.precision})")
        )
