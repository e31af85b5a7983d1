"""VaR intervals cover the true VaR as often as they claim."""

import math

import numpy as np
import pytest
from scipy import stats

from risk.intervals import bootstrap_var_interval, historical_var_interval, normal_var_interval
from risk.var import normal_var

TRUE_VAR = -stats.norm(0.0005, 0.01).ppf(0.05)


def coverage(interval, n_bars: int, replications: int = 400) -> float:
    rng = np.random.default_rng(2024)
    hits = 0
    for _ in range(replications):
        low, high = interval(rng.normal(0.0005, 0.01, n_bars), 0.95, 0.90)
        hits += low <= TRUE_VAR <= high
    return hits / replications


def test_the_delta_method_interval_of_the_normal_var_covers_at_its_level():
    # 400 replications: the standard error of the coverage is 0.015
    assert 0.85 <= coverage(normal_var_interval, 250) <= 0.95


def test_the_order_statistic_interval_covers_at_least_its_level():
    assert 0.88 <= coverage(historical_var_interval, 500)


def test_the_order_statistic_interval_brackets_the_estimate_and_opens_on_short_samples():
    r = np.random.default_rng(0).normal(0, 0.01, 1000)
    low, high = historical_var_interval(r, 0.99)
    assert low < -np.quantile(r, 0.01) < high
    short_low, short_high = historical_var_interval(r[:20], 0.99)
    assert short_high == math.inf and math.isfinite(short_low)


def test_the_bootstrap_interval_agrees_with_the_analytic_one_on_normal_returns():
    r = np.random.default_rng(1).normal(0.0005, 0.01, 1000)
    analytic = normal_var_interval(r, 0.95, 0.90)
    resampled = bootstrap_var_interval(r, normal_var, np.random.default_rng(2), 0.95, 0.90,
                                       n_resamples=500)
    np.testing.assert_allclose(resampled, analytic, rtol=0.03)
    again = bootstrap_var_interval(r, normal_var, np.random.default_rng(2), 0.95, 0.90,
                                   n_resamples=500)
    assert again == resampled
    blocks = bootstrap_var_interval(r, normal_var, np.random.default_rng(3), 0.95, 0.90,
                                    n_resamples=200, block_length=25)
    assert blocks[0] < normal_var(r, 0.95).var < blocks[1]


def test_blocks_longer_than_the_series_are_refused():
    with pytest.raises(ValueError, match="block_length=11"):
        bootstrap_var_interval(np.zeros(10), normal_var, np.random.default_rng(0), block_length=11)
