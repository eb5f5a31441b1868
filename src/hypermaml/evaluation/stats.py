"""Summary statistics of the test protocol."""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """(mean, 1.96 * sigma / sqrt(n)) of per-task accuracies.

    sigma is the population standard deviation (``numpy.std``), as in the reference code of
    the few-shot literature; a single value has an interval of 0.
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(values) / n
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return mean, 1.96 * sigma / math.sqrt(n)
