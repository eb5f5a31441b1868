"""The 95% interval of the test protocol."""

from __future__ import annotations

import math

import pytest

from hypermaml.evaluation import mean_ci95


def test_mean_and_interval_match_a_hand_computation():
    values = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    # mean 5; population variance 32 / 8 = 4, sigma 2 (the sample sigma would be 2.138...)
    mean, ci = mean_ci95(values)
    assert mean == pytest.approx(5.0)
    assert ci == pytest.approx(1.96 * 2.0 / math.sqrt(8))


def test_interval_of_two_values():
    mean, ci = mean_ci95([60.0, 80.0])
    assert mean == pytest.approx(70.0)
    assert ci == pytest.approx(1.96 * 10.0 / math.sqrt(2))


def test_constant_values_have_zero_interval():
    mean, ci = mean_ci95([73.5] * 600)
    assert mean == pytest.approx(73.5) and ci == 0.0


def test_single_value_has_zero_interval():
    assert mean_ci95([42.0]) == (42.0, 0.0)


def test_empty_list_raises():
    with pytest.raises(ValueError):
        mean_ci95([])
