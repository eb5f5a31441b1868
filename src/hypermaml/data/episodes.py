"""Episode (task) sampling: N-way K-shot tasks with Q queries per class, batched and seeded.

Within a task, the support and query sets are ordered class-major (all images of label 0, then
label 1, ...), and label ``c`` is given to the ``c``-th class drawn at random, so labels are a
random re-mapping of the dataset's classes. The K + Q images of a class are the first K + Q of
``randperm(count of that class)``: classes may differ in size, and a dense set (every class the
same size) gets exactly the tasks it got before classes could differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError
from .class_images import ClassImages

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""An augmentation of task images: (float images [..., C, H, W], the sampler's generator) ->
images of the same shape."""


def chain(augments: list[Augmentation]) -> Augmentation | None:
    """One augmentation applying ``augments`` in order; None when there are none."""
    if not augments:
        return None
    if len(augments) == 1:
        return augments[0]

    def chained(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for augment in augments:
            images = augment(images, generator)
        return images

    return chained


@dataclass(frozen=True)
class TaskShape:
    """The shape of a few-shot task: N classes (``n_way``), K support images per class
    (``n_shot``) and Q query images per class (``n_query``)."""

    n_way: int
    n_shot: int
    n_query: int = 15

    def __post_init__(self) -> None:
        values = (self.n_way, self.n_shot, self.n_query)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
            raise DataError(
                f"n_way, n_shot and n_query must be integers >= 1, got {self.n_way}, "
                f"{self.n_shot}, {self.n_query}"
            )

    @property
    def images_per_class(self) -> int:
        """K + Q: the images a task draws from each of its classes."""
        return self.n_shot + self.n_query

    def __str__(self) -> str:
        return f"{self.n_way}-way {self.n_shot}-shot ({self.n_query} queries per class)"


@dataclass
class TaskBatch:
    """B tasks of N-way K-shot with Q queries per class.

    support_x: float [B, N*K, C, H, W]; support_y: long [B, N*K]
    query_x:   float [B, N*Q, C, H, W]; query_y:   long [B, N*Q]

    Images are in [0, 1], or normalised per channel when the data has a ``normalisation``.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    n_way: int
    n_shot: int

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(
            self.support_x.to(device, non_blocking=True),
            self.support_y.to(device, non_blocking=True),
            self.query_x.to(device, non_blocking=True),
            self.query_y.to(device, non_blocking=True),
            self.n_way,
            self.n_shot,
        )

    def pin_memory(self) -> TaskBatch:
        """The batch in page-locked host memory, whose copy to a GPU overlaps computation."""
        tensors = (self.support_x, self.support_y, self.query_x, self.query_y)
        return TaskBatch(*(t.pin_memory() for t in tensors), self.n_way, self.n_shot)

    @property
    def n_tasks(self) -> int:
        return self.support_x.shape[0]

    def split(self, parts: int) -> list[TaskBatch]:
        """The tasks in at most ``parts`` consecutive batches of near-equal size."""
        size = -(-self.n_tasks // max(1, parts))
        tensors = (self.support_x, self.support_y, self.query_x, self.query_y)
        chunks = zip(*(t.split(size) for t in tensors))
        return [TaskBatch(*c, self.n_way, self.n_shot) for c in chunks]


def check_episode_shape(data: ClassImages, shape: TaskShape) -> None:
    """Raise a DataError when ``data`` cannot provide tasks of ``shape`` (every class must hold
    K + Q images: the smallest one decides)."""
    n_way, n_shot, n_query = shape.n_way, shape.n_shot, shape.n_query
    need = shape.images_per_class
    if n_way > data.n_classes:
        raise DataError(
            f"{n_way}-way tasks need {n_way} classes, but {data.name}/{data.split} has only "
            f"{data.n_classes}; lower n_way to at most {data.n_classes}"
        )
    if need > data.n_per_class:
        smallest = data.counts.index(data.n_per_class)
        where = (
            f"{data.name}/{data.split} has {data.n_per_class}"
            if data.is_dense
            else f"the smallest class of {data.name}/{data.split} "
            f"({data.class_names[smallest]}) has {data.n_per_class}"
        )
        raise DataError(
            f"{n_shot}-shot tasks with {n_query} queries need {need} images per class, "
            f"but {where}; lower n_shot + n_query to at most {data.n_per_class}"
        )


class EpisodeSampler:
    """Draws batches of tasks from one split.

    The tasks depend only on (data, shape, seed, augment): two samplers with the same arguments
    produce identical tasks, whatever model consumes them.

    ``augment``: a function of (float images [B, N, K+Q, C, H, W] in [0, 1], the sampler's
    generator) returning images of the same shape, applied to every image of a task (training
    data only). The data's ``normalisation``, if any, is applied after it.
    """

    def __init__(
        self,
        data: ClassImages,
        shape: TaskShape,
        seed: int = 0,
        augment: Augmentation | None = None,
    ) -> None:
        check_episode_shape(data, shape)
        self.data, self.shape = data, shape
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        self._counts = data.counts
        self._offsets = data.offsets
        self._mean_std = None
        if data.normalisation is not None:
            mean, std = (torch.tensor(v, dtype=torch.float32)[:, None, None]
                         for v in data.normalisation)  # fmt: skip
            self._mean_std = (mean, std)  # [C, 1, 1] each

    def sample(self, n_tasks: int) -> TaskBatch:
        """The next ``n_tasks`` tasks of the sampler's stream (float images; see ``TaskBatch``)."""
        g = self.generator
        # one task at a time, so a task does not depend on how the tasks are batched
        draws = [self._draw(g) for _ in range(n_tasks)]
        x = self._images(draws)
        if self.augment is not None:
            x = self.augment(x, g)
        return self._batch(x)

    def sample_keyed(self, step: int, tasks: range) -> TaskBatch:
        """Tasks ``tasks`` of training step ``step`` of the keyed stream: task i of step s is
        drawn, and augmented, from its own generator seeded by (seed, s, i) (``task_seed``).
        The tasks of a step are thus the same however they are shared among processes, and a
        run resumed at any step continues the same stream without a generator state."""
        generators = [torch.Generator().manual_seed(task_seed(self.seed, step, i)) for i in tasks]
        x = self._images([self._draw(g) for g in generators])
        if self.augment is not None:
            x = torch.cat([self.augment(x[t : t + 1], g) for t, g in enumerate(generators)])
        return self._batch(x)

    def _draw(self, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One task's classes [N] and the positions [N, K+Q] of its images in each class."""
        n, need = self.shape.n_way, self.shape.images_per_class
        chosen = torch.randperm(self.data.n_classes, generator=g)[:n]
        picks = [torch.randperm(self._counts[c], generator=g)[:need] for c in chosen.tolist()]
        return chosen, torch.stack(picks)

    def _images(self, draws: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """The float images [B, N, K+Q, C, H, W] in [0, 1] of drawn tasks."""
        classes = torch.stack([c for c, _ in draws])  # [B, N]
        picks = torch.stack([p for _, p in draws])  # [B, N, K+Q]
        index = self._offsets[classes][:, :, None] + picks  # rows of data.images
        return self.data.images[index].float().div_(255.0)

    def _batch(self, x: torch.Tensor) -> TaskBatch:
        """The task batch of images [B, N, K+Q, C, H, W] (augmented), normalised."""
        n, k, q = self.shape.n_way, self.shape.n_shot, self.shape.n_query
        n_tasks = x.shape[0]
        if self._mean_std is not None:
            mean, std = self._mean_std
            x = x.sub_(mean).div_(std)  # x is this batch's own copy
        shape = x.shape[3:]
        support_x = x[:, :, :k].reshape(n_tasks, n * k, *shape)
        query_x = x[:, :, k:].reshape(n_tasks, n * q, *shape)
        labels = torch.arange(n)
        support_y = labels.repeat_interleave(k).expand(n_tasks, -1).contiguous()
        query_y = labels.repeat_interleave(q).expand(n_tasks, -1).contiguous()
        return TaskBatch(support_x, support_y, query_x, query_y, n, k)

    def batches(
        self, n_tasks: int, batch_size: int, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[TaskBatch]:
        """``n_tasks`` tasks in batches of at most ``batch_size``. ``shard`` = (rank, ranks):
        only every ranks-th batch from the rank-th on is built (the others are drawn, so the
        stream stays the same, but never assembled); batch j holds tasks j * batch_size on."""
        rank, ranks = shard
        if ranks > 1 and self.augment is not None:
            raise ValueError("a sampler with an augmentation cannot be sharded")
        done, j = 0, 0
        while done < n_tasks:
            size = min(batch_size, n_tasks - done)
            if j % ranks == rank:
                yield self.sample(size)
            else:
                for _ in range(size):
                    self._draw(self.generator)
            done += size
            j += 1


def task_seed(seed: int, step: int, index: int) -> int:
    """The seed of task ``index`` of training step ``step`` in the keyed stream of ``seed``: a
    64-bit hash of the three (numpy's ``SeedSequence``), so nearby keys give unrelated tasks."""
    entropy = [seed % 2**63, step, index]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
