"""Per-epoch metrics to a CSV file and, when TensorBoard is installed, to TensorBoard."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

from ..errors import MissingExtraError
from ..extras import require
from ..outputs import write_text_atomic

FIELDS = ("epoch", "train_loss", "train_accuracy", "val_accuracy", "val_ci95", "lr", "seconds")
"""CSV columns; the validation ones are empty in epochs without validation."""


class MetricLog:
    """Appends one row per epoch to ``RUN/metrics.csv`` and TensorBoard scalars to ``RUN/tb``
    (skipped, with a warning naming the extra to install, when TensorBoard is missing)."""

    def __init__(
        self, run_dir: Path, tensorboard: bool = True, fields: tuple[str, ...] = FIELDS
    ) -> None:
        self.csv_path = run_dir / "metrics.csv"
        self.fields = fields
        self.writer = None
        if tensorboard:
            try:
                require("tensorboard", "TensorBoard logging")
            except MissingExtraError as exc:
                warnings.warn(f"{exc}; metrics go to metrics.csv only", stacklevel=2)
                return
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs >= ``epoch`` (written after the checkpoint a resume starts from)."""
        if not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        keep = [r for r in rows if int(r["epoch"]) < epoch]
        if rows:
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(keep)
            write_text_atomic(self.csv_path, text.getvalue())

    def write(self, epoch: int, metrics: dict[str, float]) -> None:
        row = {"epoch": epoch, **metrics}
        new = not self.csv_path.is_file()
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, restval="")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, epoch)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
