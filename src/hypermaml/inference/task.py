"""A trained model taught new classes: ``adapt`` a checkpoint's method to a person's support set,
then classify query images with the adapted task.

```python
import hypermaml

model = hypermaml.load("cross_char_1s_hypermaml")           # a registered name or a folder
task = model.adapt(["a.png", "b.png", ...], ["alpha", "beta", ...])
task.predict(["q1.png", "q2.png"])        # ["beta", "alpha"]: the caller's own labels
task.predict_proba(["q1.png"])            # tensor [1, N], rows summing to 1
```

Query statistics: with the transductive BatchNorm of the papers (``model.bn: transductive``, every
shipped checkpoint) a group of images is normalised with its own statistics, so a query's logits
depend on what it is grouped with. ``statistics`` says how:

- ``"support"`` (the default): each query is normalised together with the support set, alone
  among the queries: its prediction is the same whatever else is asked, one image at a time or
  a thousand. On Omniglot->EMNIST 1-shot this costs about 1.5 points against the benchmarks' rule
  (docs/results.md, "Using a model"); scoring each image as a group of one would cost 20.
- ``"queries"``: the benchmarks' rule: the query images of one call (of ``batch_size`` when given)
  are normalised together; the logits equal ``evaluate``'s for the same task.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..data.preprocess import ImageLike, Preprocess, expand
from ..errors import DataError
from ..methods.base import Method, TaskParams
from ..methods.checkpoint import FewShotCheckpoint
from ..methods.maml import MAML
from .groups import with_support

Images = Iterable[ImageLike] | torch.Tensor
Statistics = Literal["support", "queries"]
SUPPORT_CHUNK = 64
"""Queries scored at once under ``statistics="support"`` (each with its own copy of the support
set) when no ``batch_size`` is given."""


@dataclass
class AdaptedTask:
    """A method adapted to one support set: its task parameters and the caller's class names.

    ``classes``: the labels as the caller named them, in the order of the probability columns.
    ``support``: the preprocessed support images [S, C, H, W]. ``seconds``: the wall time of
    the adaptation (preprocessing excluded). ``shots``: the support images of each class.
    """

    method: Method
    params: TaskParams
    classes: list[Hashable]
    preprocess: Preprocess
    support: torch.Tensor
    seconds: float
    shots: list[int] = field(default_factory=list)

    @property
    def device(self) -> torch.device:
        return next(self.method.parameters()).device

    def logits(self, images: Images, batch_size: int | None = None,
               statistics: Statistics = "support") -> torch.Tensor:  # fmt: skip
        """Float [M, N] logits of the query ``images``; ``statistics`` and ``batch_size``: the
        module doc (``batch_size`` also bounds the images held at once)."""
        return self._run(images, batch_size, statistics, self._adapted_logits)

    def predict_proba(self, images: Images, batch_size: int | None = None,
                      statistics: Statistics = "support") -> torch.Tensor:  # fmt: skip
        """Float [M, N] class probabilities of the query ``images``; columns follow ``classes``."""
        return self.logits(images, batch_size, statistics).softmax(-1)

    def predict(self, images: Images, batch_size: int | None = None,
                statistics: Statistics = "support") -> list[Hashable]:  # fmt: skip
        """The predicted class of each query image, as the caller named the classes."""
        logits = self.logits(images, batch_size, statistics)
        return [self.classes[i] for i in logits.argmax(-1).tolist()]

    def universal_proba(self, images: Images, batch_size: int | None = None,
                        statistics: Statistics = "support") -> torch.Tensor | None:  # fmt: skip
        """[M, N] probabilities of the universal classifier before adaptation (HyperMAML's
        head without the generated update; MAML's meta-learnt weights without inner steps), to
        show what adaptation changed; None for ProtoNet, which has none."""
        if not hasattr(self.method, "head"):
            return None
        return self._run(images, batch_size, statistics, self._universal_logits).softmax(-1)

    def export_onnx(self, path: str | Path, statistics: Statistics = "support") -> Path:
        """Write this adapted classifier as an ONNX graph: query images [Q, C, H, W]
        (preprocessed) in, logits [Q, N] out (``onnx_export.export_adapted``)."""
        from .onnx_export import export_adapted

        return export_adapted(self.method, self.params, self.support, self.classes,
                              self.preprocess, path, statistics)  # fmt: skip

    def _adapted_logits(self, x: torch.Tensor) -> torch.Tensor:
        """x [G, n, C, H, W] (G groups) -> logits [G, n, N]."""
        params = {k: v.expand(x.shape[0], *v.shape[1:]) for k, v in self.params.items()}
        return self.method.predict(x, params)

    def _universal_logits(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.method, MAML):
            return self.method.logits(x)
        return self.method.head(self.method.encoder(x))

    def _run(self, images: Images, batch_size: int | None, statistics: Statistics,
             fn) -> torch.Tensor:  # fmt: skip
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if statistics not in ("support", "queries"):
            raise ValueError(f"statistics must be 'support' or 'queries', got {statistics!r}")
        items = expand(images)
        if not items:
            raise DataError("no query images given: pass at least one image")
        size = batch_size or (len(items) if statistics == "queries" else SUPPORT_CHUNK)
        out = []
        with torch.no_grad():
            for start in range(0, len(items), size):
                x = self.preprocess(items[start : start + size]).to(self.device)  # [m, C, H, W]
                if statistics == "queries":
                    out.append(fn(x[None])[0].float().cpu())
                    continue
                out.append(fn(with_support(self.support, x))[:, -1].float().cpu())
        return torch.cat(out)


def encode_labels(labels: Sequence[Hashable]) -> tuple[list[Hashable], torch.Tensor]:
    """(the distinct labels in order of first appearance, long [M] of their indices)."""
    classes: dict[Hashable, int] = {}
    for label in labels:
        try:
            classes.setdefault(label, len(classes))
        except TypeError as exc:
            raise DataError(
                f"label {label!r} cannot name a class (use a string or number)"
            ) from exc
    return list(classes), torch.tensor([classes[label] for label in labels], dtype=torch.long)


def adapt(
    checkpoint: FewShotCheckpoint,
    images: Iterable[ImageLike] | torch.Tensor,
    labels: Sequence[Hashable],
    preprocess: Preprocess | None = None,
) -> AdaptedTask:
    """Adapt ``checkpoint``'s method to the support set (``images[i]`` is of class
    ``labels[i]``), in one forward pass for HyperMAML and ProtoNet, by its inner steps for MAML.

    Any number of shots per class (HyperMAML and ProtoNet average each class's embeddings).
    HyperMAML and MAML take exactly the number of classes they were trained for (their heads
    have that many outputs); ProtoNet takes any number from 2. ``preprocess``: the
    checkpoint's own (``checkpoint.preprocess``) unless given.
    """
    method = checkpoint.method
    items = expand(images)
    labels = list(labels)
    if not items:
        raise DataError("the support set is empty: give at least one image per class")
    if len(items) != len(labels):
        raise DataError(f"{len(items)} support images but {len(labels)} labels: give one label "
                        f"per image")  # fmt: skip
    classes, y = encode_labels(labels)
    n_way = len(classes)
    if n_way < 2:
        raise DataError(f"the support set holds one class ({classes[0]!r}); a task needs at "
                        f"least two")  # fmt: skip
    fixed = hasattr(method, "head")
    if fixed and n_way != method.n_way:
        raise DataError(
            f"this {type(method).__name__} checkpoint classifies exactly {method.n_way} classes "
            f"per task (its classifier has {method.n_way} outputs), and {n_way} were given; give "
            f"{method.n_way} classes, split the classes into tasks of {method.n_way}, or use a "
            f"ProtoNet checkpoint, which takes any number of classes"
        )
    preprocess = preprocess or checkpoint.preprocess
    device = next(method.parameters()).device
    x = preprocess(items).to(device)
    method.eval()
    started = time.perf_counter()
    with torch.no_grad():  # MAML's inner loop turns gradients on for its own steps
        params = method.adapt(x[None], y[None].to(device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    shots = torch.bincount(y, minlength=n_way).tolist()
    return AdaptedTask(method, params, classes, preprocess, x, seconds, shots)


class FewShotModel(FewShotCheckpoint):
    """A loaded few-shot checkpoint (``hypermaml.load``) that can be taught new classes."""

    def adapt(self, images: Images, labels: Sequence[Hashable]) -> AdaptedTask:
        """The method adapted to the support set ``images`` of classes ``labels`` (one label per
        image, named as the caller likes): ``adapt`` above."""
        return adapt(self, images, labels)

    @classmethod
    def of(cls, checkpoint: FewShotCheckpoint) -> FewShotModel:
        return cls(checkpoint.method, checkpoint.config, checkpoint.meta, checkpoint.path)
