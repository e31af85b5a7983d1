"""Stationary block bootstrap of strategy metrics: arch's draws, determinism, scale, intervals."""

import numpy as np
import pytest
from arch.bootstrap import StationaryBootstrap, optimal_block_length

from eval import metrics
from eval.bootstrap import (
    expected_block_length,
    percentile_interval,
    stationary_bootstrap_metrics,
)


@pytest.fixture(scope="module")
def returns():
    # stochastic volatility: returns serially uncorrelated, squared returns clustered
    rng = np.random.default_rng(7)
    vol = 0.01 * np.exp(np.convolve(rng.normal(0, 0.3, 1100), np.ones(20) / np.sqrt(20), "same"))[:1000]
    return 0.0004 + vol * rng.standard_normal(1000)


def test_resamples_are_arch_stationary_bootstrap_draws(returns):
    result = stationary_bootstrap_metrics(returns, n_resamples=5, block_length=12.5, seed=42)
    reference = StationaryBootstrap(12.5, returns, seed=np.random.default_rng(42))
    paths = np.stack([data[0][0] for data in reference.bootstrap(5)], axis=1)   # (T, 5)
    np.testing.assert_allclose(result.sharpe, metrics.sharpe_ratio(paths), rtol=1e-12)
    np.testing.assert_allclose(result.max_drawdown, metrics.max_drawdown(paths), rtol=1e-12)
    np.testing.assert_allclose(result.value_at_risk, metrics.value_at_risk(paths), rtol=1e-12)


def test_same_seed_same_numbers_whatever_the_chunk_size(returns):
    first = stationary_bootstrap_metrics(returns, n_resamples=500, seed=3, chunk_size=64)
    again = stationary_bootstrap_metrics(returns, n_resamples=500, seed=3, chunk_size=500)
    other = stationary_bootstrap_metrics(returns, n_resamples=500, seed=4)
    for name in ("sharpe", "max_drawdown", "value_at_risk"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
        assert not np.array_equal(getattr(first, name), getattr(other, name))


def test_block_length_defaults_to_arch_optimal_length_of_returns_and_squares(returns):
    optimal = optimal_block_length(np.column_stack([returns, returns**2]))["stationary"]
    assert optimal[0] < 2 < optimal[1]           # returns uncorrelated, volatility clustered
    assert expected_block_length(returns) == pytest.approx(optimal[1])
    result = stationary_bootstrap_metrics(returns, n_resamples=10)
    assert result.block_length == pytest.approx(optimal[1])
    # iid noise: here arch estimates 0.82 and 0.66 bars, floored at one bar
    assert expected_block_length(np.random.default_rng(2).normal(size=500)) == 1.0


def test_sharpe_spread_matches_its_iid_standard_error():
    # iid normal returns: sd of the annualised Sharpe is sqrt(252 (1 + SR^2 / 2) / T) (Lo 2002)
    r = np.random.default_rng(1).normal(0.0005, 0.01, size=1000)
    result = stationary_bootstrap_metrics(r, n_resamples=500, block_length=1.0, seed=0)
    sr = metrics.sharpe_ratio(r)[0] / np.sqrt(252)
    assert result.sharpe.std() == pytest.approx(np.sqrt(252 * (1 + sr**2 / 2) / 1000), rel=0.12)
    assert result.sharpe.mean() == pytest.approx(metrics.sharpe_ratio(r)[0], abs=0.15)


def test_intervals_bracket_the_observed_metrics(returns):
    result = stationary_bootstrap_metrics(returns, n_resamples=500, seed=0)
    intervals = result.confidence_intervals(0.9)
    assert set(intervals) == {"sharpe", "max_drawdown", "value_at_risk"}
    observed = {"sharpe": metrics.sharpe_ratio(returns)[0],
                "max_drawdown": metrics.max_drawdown(returns)[0],
                "value_at_risk": metrics.value_at_risk(returns)[0]}
    for name, (low, high) in intervals.items():
        assert low < observed[name] < high, name


def test_percentile_interval_by_hand():
    assert percentile_interval(np.arange(1001.0), 0.95) == pytest.approx((25.0, 975.0))
    assert percentile_interval(np.r_[np.arange(101.0), np.nan], 0.9) == pytest.approx((5.0, 95.0))
    with pytest.raises(ValueError, match="confidence must be in"):
        percentile_interval(np.arange(10.0), 95)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match=r"NaN or infinite at bars \[2\]"):
        stationary_bootstrap_metrics(np.array([0.01, 0.0, np.nan, 0.02]), n_resamples=10)
    with pytest.raises(ValueError, match="shape \\(T,\\)"):
        stationary_bootstrap_metrics(np.zeros((10, 2)), n_resamples=10)
    with pytest.raises(ValueError, match="block_length must be >= 1"):
        stationary_bootstrap_metrics(np.ones(10) * 0.01, n_resamples=10, block_length=0.5)
