"""``hypermaml predict``: a checkpoint adapted to a folder of support images, then classifying
query files, streamed in batches.

The support folder is ``DIR/<class>/<images>``: each sub-folder is a class named by the folder.
Queries are image files or folders of them.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.images import IMAGE_SUFFIXES
from ..data.preprocess import expand
from ..errors import DataError
from .task import AdaptedTask

SUFFIXES = ", ".join(sorted(IMAGE_SUFFIXES))


def support_folder(root: str | Path) -> tuple[list[Path], list[str]]:
    """(image files, their class names) of ``root/<class>/<images>``; a DataError names a class
    without images, a missing folder, or fewer than two classes."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--support {root} is not a folder; give a folder with one sub-folder of "
                        f"images per class")  # fmt: skip
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root} holds {len(classes)} class folder(s); a task needs at least two "
                        f"(one sub-folder of images per class)")  # fmt: skip
    images, labels = [], []
    for folder in classes:
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)  # fmt: skip
        if not files:
            raise DataError(f"class folder {folder} holds no images ({SUFFIXES}); add at least "
                            f"one, or remove the folder")  # fmt: skip
        images += files
        labels += [folder.name] * len(files)
    return images, labels


@dataclass
class Row:
    """One query: the file, the predicted class and its probability, and the top k."""

    file: str
    predicted: str
    probability: float
    top: list[tuple[str, float]]


@dataclass
class PredictReport:
    checkpoint: str
    classes: list[str]
    shots: list[int]
    adapt_seconds: float
    predict_seconds: float
    rows: list[Row]

    def lines(self, top_k: int) -> list[str]:
        """The table ``hypermaml predict`` prints."""
        width = max([len("file"), *(len(r.file) for r in self.rows)])
        shots = ", ".join(f"{c} ({k})" for c, k in zip(self.classes, self.shots))
        out = [f"{self.checkpoint}: adapted to {len(self.classes)} classes in "
               f"{1000 * self.adapt_seconds:.1f} ms: {shots}",
               f"{'file':<{width}}  {'predicted':<12} {'prob':>6}  top {top_k}"]  # fmt: skip
        for r in self.rows:
            top = ", ".join(f"{c} {p:.2f}" for c, p in r.top)
            out.append(f"{r.file:<{width}}  {r.predicted:<12} {r.probability:>6.3f}  {top}")
        out.append(f"{len(self.rows)} queries in {self.predict_seconds:.2f} s")
        return out

    def write(self, path: str | Path) -> None:
        """CSV (``.csv``) or JSON (any other suffix) of the report."""
        path = Path(path)
        if path.suffix.lower() == ".csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(["file", "predicted", "probability", "top"])
            for r in self.rows:
                top = ";".join(f"{c}:{p:.6f}" for c, p in r.top)
                writer.writerow([r.file, r.predicted, f"{r.probability:.6f}", top])
            text = buf.getvalue()
        else:
            text = json.dumps(asdict(self), indent=1) + "\n"
        from ..outputs import write_text_atomic

        write_text_atomic(path, text)


def predict_files(task: AdaptedTask, queries: list[Any], checkpoint: str, top_k: int = 3,
                  batch_size: int = 64) -> PredictReport:  # fmt: skip
    """Classify ``queries`` (files or folders) with ``task``, ``batch_size`` at a time."""
    items = [q for query in queries for q in expand(query)]
    if not items:
        raise DataError("no query images given")
    started = time.perf_counter()
    rows = []
    k = min(top_k, len(task.classes))
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        probs = task.predict_proba(chunk, batch_size=batch_size)
        values, indices = probs.topk(k, dim=-1)
        for file, v, i in zip(chunk, values.tolist(), indices.tolist()):
            top = [(str(task.classes[j]), p) for j, p in zip(i, v)]
            rows.append(Row(str(file), top[0][0], top[0][1], top))
    return PredictReport(checkpoint, [str(c) for c in task.classes], task.shots, task.seconds,
                         time.perf_counter() - started, rows)  # fmt: skip
