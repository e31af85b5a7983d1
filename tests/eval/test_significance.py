"""Paired Sharpe-difference tests: Memmel's closed form by hand and in size, the Ledoit-Wolf
bootstrap against the closed form where both hold and where only the bootstrap does."""

import warnings

import numpy as np
import pytest
from scipy import stats

from eval.overfitting import estimate_sharpe, sharpe_standard_error
from eval.significance import (
    ledoit_wolf_test,
    memmel_test,
    sharpe_block_length,
    sharpe_confidence_interval,
)


def _pair_with_exact_moments(n_bars, mean_a, std_a, mean_b, std_b, rho, seed=0):
    """Two series whose sample means, sample stds (ddof=1) and correlation are exactly given."""
    noise = np.random.default_rng(seed).standard_normal((n_bars, 2))
    q, _ = np.linalg.qr(noise - noise.mean(axis=0))         # orthonormal, zero-mean columns
    z1, z2 = q.T * np.sqrt(n_bars - 1)                      # unit sample variance
    return mean_a + std_a * z1, mean_b + std_b * (rho * z1 + np.sqrt(1 - rho**2) * z2)


def _ar1(phi, n_bars, n_series, rng):
    shocks = rng.standard_normal((n_bars + 200, n_series))
    x = np.zeros_like(shocks)
    for t in range(1, len(x)):
        x[t] = phi * x[t - 1] + shocks[t]
    return x[200:] * np.sqrt(1 - phi**2)                     # unit variance


def test_memmel_by_hand():
    # per-bar SR_a = 0.001 / 0.01 = 0.1, SR_b = 0.0004 / 0.008 = 0.05, rho = 0.6, T = 400:
    # Var = (2 - 1.2 + (0.01 + 0.0025) / 2 - 0.1 * 0.05 * 0.36) / 400 = 0.80445 / 400
    # z = 0.05 / sqrt(0.002011125) = 1.114937, p = 2 (1 - Phi(z)) = 0.264877
    a, b = _pair_with_exact_moments(400, 0.001, 0.01, 0.0004, 0.008, 0.6)
    result = memmel_test(a, b)
    assert result.statistic == pytest.approx(1.1149374, abs=1e-6)
    assert result.p_value == pytest.approx(0.2648773, abs=1e-6)
    assert result.estimate == pytest.approx(0.05 * np.sqrt(252))
    assert result.standard_error == pytest.approx(np.sqrt(0.002011125 * 252))
    low, high = result.interval
    assert (low + high) / 2 == pytest.approx(result.estimate)
    assert high - low == pytest.approx(2 * 1.959964 * result.standard_error, rel=1e-6)


def test_memmel_holds_its_size_for_iid_normal_returns():
    rng = np.random.default_rng(4)
    p_values = []
    for _ in range(2000):                                   # equal true Sharpe ratios 0.05
        z = rng.standard_normal((250, 2))
        p_values.append(memmel_test(0.0005 + 0.01 * z[:, 0],
                                    0.0005 + 0.01 * (0.5 * z[:, 0] + np.sqrt(0.75) * z[:, 1])).p_value)
    assert np.mean(np.array(p_values) < 0.05) == pytest.approx(0.05, abs=0.015)


def test_ledoit_wolf_agrees_with_memmel_for_iid_normal_returns():
    a, b = _pair_with_exact_moments(5000, 0.0008, 0.01, 0.0002, 0.01, 0.5, seed=1)
    closed_form = memmel_test(a, b)
    robust = ledoit_wolf_test(a, b, n_resamples=500, seed=0)
    assert robust.estimate == pytest.approx(closed_form.estimate)
    assert robust.standard_error == pytest.approx(closed_form.standard_error, rel=0.1)
    assert robust.p_value == pytest.approx(closed_form.p_value, abs=0.03)


def test_ledoit_wolf_widens_for_autocorrelated_returns_where_memmel_does_not():
    # AR(1) returns, phi = 0.3: the long-run variance of a mean is (1 + phi) / (1 - phi) times
    # the iid one, so the standard error of the difference is about sqrt(1.3 / 0.7) times Memmel's
    x = _ar1(0.3, 5000, 2, np.random.default_rng(2))
    a, b = 0.0005 + 0.01 * x[:, 0], 0.0002 + 0.01 * x[:, 1]
    ratio = ledoit_wolf_test(a, b, n_resamples=200).standard_error / memmel_test(a, b).standard_error
    assert ratio == pytest.approx(np.sqrt(1.3 / 0.7), rel=0.1)


def test_under_h0_with_autocorrelated_returns_memmel_over_rejects_and_ledoit_wolf_does_not():
    rng = np.random.default_rng(1)
    robust, closed_form = [], []
    for seed in range(150):                                 # equal true Sharpe ratios, phi = 0.3
        x = _ar1(0.3, 600, 2, rng)
        a, b = 0.0005 + 0.01 * x[:, 0], 0.0005 + 0.01 * x[:, 1]
        robust.append(ledoit_wolf_test(a, b, n_resamples=100, seed=seed).p_value < 0.05)
        closed_form.append(memmel_test(a, b).p_value < 0.05)
    assert np.mean(robust) < 0.09                           # nominal 0.05
    assert np.mean(closed_form) > 0.11


def test_ledoit_wolf_p_value_separates_skill_from_a_twin():
    rng = np.random.default_rng(8)
    z = rng.standard_normal((1000, 3))
    baseline = 0.01 * z[:, 0]
    better = 0.002 + 0.01 * z[:, 1]                         # per-bar SR 0.2 more: z near 4.5
    twin = 0.01 * z[:, 2]
    skill = ledoit_wolf_test(better, baseline, n_resamples=500)
    assert skill.p_value < 0.01 and skill.interval[0] > 0
    luck = ledoit_wolf_test(twin, baseline, n_resamples=500)
    assert luck.p_value > 0.2 and luck.interval[0] < 0 < luck.interval[1]


def test_ledoit_wolf_is_deterministic_given_the_seed_and_not_the_chunk_size():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0005, 0.01, 600), rng.normal(0.0002, 0.01, 600)
    first = ledoit_wolf_test(a, b, block_length=5, n_resamples=300, seed=9, chunk_size=32)
    assert first == ledoit_wolf_test(a, b, block_length=5, n_resamples=300, seed=9, chunk_size=300)
    assert first != ledoit_wolf_test(a, b, block_length=5, n_resamples=300, seed=10)


def test_single_sharpe_standard_error_matches_the_iid_formula_of_the_psr():
    # iid skewed returns: the HAC standard error estimates the same quantity as Mertens' formula
    # behind the PSR, sqrt((1 - skew SR + (kurt - 1) / 4 SR^2) / (T - 1))
    r = 0.01 * (0.08 + 1.0 - np.random.default_rng(6).exponential(size=5000))
    result = sharpe_confidence_interval(r, n_resamples=500)
    mertens = sharpe_standard_error(estimate_sharpe(r))[0] * np.sqrt(252)
    assert result.standard_error == pytest.approx(mertens, rel=0.1)
    low, high = result.interval
    assert low < result.estimate < high
    assert high - low == pytest.approx(2 * stats.norm.ppf(0.975) * result.standard_error, rel=0.15)
    assert result.p_value == 1 / 501                         # SR of 1.27 over 20 years is not 0


def test_block_length_covers_volatility_clustering():
    rng = np.random.default_rng(7)
    vol = 0.01 * np.exp(np.convolve(rng.normal(0, 0.5, 2100), np.ones(20) / np.sqrt(20), "same"))[:2000]
    clustered = vol * rng.standard_normal(2000)
    assert sharpe_block_length(clustered) > 10
    assert sharpe_block_length(np.random.default_rng(0).normal(size=2000)) <= 4


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match=r"same dates, got shapes \[\(100,\), \(99,\)\]"):
        memmel_test(np.zeros(100), np.zeros(99))
    with pytest.raises(ValueError, match="series 1 is NaN or infinite at bar 3"):
        ledoit_wolf_test(np.ones(10), np.r_[np.ones(3), np.nan, np.ones(6)])
    with pytest.raises(ValueError, match="block_length must be in 1 .. 50"):
        sharpe_confidence_interval(np.random.default_rng(0).normal(size=100), block_length=60)


def test_resamples_of_a_flat_stretch_are_left_out_not_poisoning_the_interval():
    # a book that trades for 60 bars and then sits out of the market: blocks of 40 drawn from the
    # flat stretch make constant resamples, which have no Sharpe ratio and must not turn p and the
    # interval into NaN
    rng = np.random.default_rng(4)
    active = np.r_[rng.normal(0.001, 0.01, 60), np.zeros(440)]
    baseline = rng.normal(0.0003, 0.01, 500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = sharpe_confidence_interval(active, block_length=40, n_resamples=400, seed=1)
        paired = ledoit_wolf_test(active, baseline, block_length=40, n_resamples=400, seed=1)
    for result in (single, paired):
        assert 0 < result.resamples < 400 and np.all(np.isfinite(result.interval))
        assert result.p_value * (result.resamples + 1) == pytest.approx(round(result.p_value * (result.resamples + 1)))
    # P(all 12 blocks start in the flat stretch) ~ (400 / 500)^12 ~ 7 %
    assert 0.01 < 1 - single.resamples / 400 < 0.2


def test_a_constant_series_has_no_sharpe_ratio_to_test():
    returns = np.random.default_rng(0).normal(size=100)
    with pytest.raises(ValueError, match="series 1 is constant over its 100 bars"):
        ledoit_wolf_test(returns, np.zeros(100), n_resamples=50)
