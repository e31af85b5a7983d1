"""PSR, DSR, MinTRL and PBO against the papers' formulas and published figures."""

import numpy as np
import pytest
from scipy import integrate, stats

from eval import metrics
from eval.overfitting import (
    SharpeEstimate,
    deflated_sharpe_ratio,
    estimate_sharpe,
    expected_maximum_sharpe,
    minimum_track_record_length,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    sharpe_standard_error,
)


def test_deflated_sharpe_reproduces_the_papers_numerical_example():
    # Bailey & López de Prado (2014), "A numerical example": best of N = 100 trials with an
    # annualised SR of 2.5, variance of the trials' annualised SRs 1/2, five years of daily
    # returns (T = 1250, 250 a year), skewness -3, kurtosis 10. Published: SR_0 = 0.1132 per
    # day, DSR = 0.9004.
    best = SharpeEstimate(sharpe=2.5, skewness=-3.0, kurtosis=10.0, n_obs=1250, periods_per_year=250)
    assert expected_maximum_sharpe(100, 0.5) / np.sqrt(250) == pytest.approx(0.1132, abs=5e-5)
    assert deflated_sharpe_ratio(best, n_trials=100, trials_sharpe_variance=0.5) == pytest.approx(0.9004, abs=5e-5)


def test_psr_of_a_normal_series_matches_scipy_by_hand():
    r = np.random.default_rng(3).normal(0.0004, 0.01, size=1000)
    sr = r.mean() / r.std(ddof=1)                                  # per bar
    skew, kurt = stats.skew(r), stats.kurtosis(r, fisher=False)
    benchmark = 0.5                                                 # annualised
    z = (sr - benchmark / np.sqrt(252)) * np.sqrt(999) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    estimate = estimate_sharpe(r)
    assert estimate.sharpe[0] == pytest.approx(sr * np.sqrt(252), rel=1e-12)
    assert probabilistic_sharpe_ratio(estimate, benchmark)[0] == pytest.approx(stats.norm.cdf(z), rel=1e-12)
    # for normal returns the moments barely matter: the normal-theory PSR is within a hair
    normal_theory = SharpeEstimate(estimate.sharpe, 0.0, 3.0, 1000)
    assert probabilistic_sharpe_ratio(normal_theory, benchmark) == pytest.approx(stats.norm.cdf(z), abs=5e-3)


@pytest.mark.parametrize("shape", ["normal", "negatively skewed"])
def test_psr_is_calibrated_when_the_true_sharpe_equals_the_benchmark(shape):
    rng = np.random.default_rng(11)
    if shape == "normal":
        noise = rng.standard_normal((1000, 4000))
    else:                                                           # skewness -2, kurtosis 9
        noise = 1.0 - rng.exponential(size=(1000, 4000))
    true_sharpe_per_bar = 0.08
    r = 0.01 * (true_sharpe_per_bar + noise)                       # (T, S), true SR known
    psr = probabilistic_sharpe_ratio(estimate_sharpe(r), true_sharpe_per_bar * np.sqrt(252))
    assert np.mean(psr > 0.95) == pytest.approx(0.05, abs=0.012)
    assert np.mean(psr > 0.5) == pytest.approx(0.5, abs=0.03)


def test_standard_error_grows_with_negative_skew_and_fat_tails():
    normal = SharpeEstimate(2.0, 0.0, 3.0, 500)
    crash_prone = SharpeEstimate(2.0, -2.0, 12.0, 500)
    sr = 2.0 / np.sqrt(252)
    assert sharpe_standard_error(normal) == pytest.approx(np.sqrt((1 + sr**2 / 2) / 499))
    assert sharpe_standard_error(crash_prone) > sharpe_standard_error(normal)


def test_minimum_track_record_length_is_where_psr_reaches_the_confidence():
    estimate = SharpeEstimate(sharpe=1.2, skewness=-0.8, kurtosis=7.0, n_obs=0)
    bars = minimum_track_record_length(estimate, benchmark_sharpe=0.3, confidence=0.95)
    shorter = SharpeEstimate(1.2, -0.8, 7.0, int(np.floor(bars)))
    longer = SharpeEstimate(1.2, -0.8, 7.0, int(np.ceil(bars)))
    assert probabilistic_sharpe_ratio(shorter, 0.3) < 0.95 <= probabilistic_sharpe_ratio(longer, 0.3)
    assert minimum_track_record_length(estimate, benchmark_sharpe=1.5) == np.inf


@pytest.mark.parametrize("n_trials, tolerance", [(10, 0.03), (100, 0.01), (1000, 0.005)])
def test_expected_maximum_sharpe_approximates_the_exact_expected_maximum(n_trials, tolerance):
    # E[max of N iid standard normals] = integral of x N phi(x) Phi(x)^(N-1); the extreme-value
    # approximation tightens as N grows
    density = lambda x: x * n_trials * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n_trials - 1)
    exact, _ = integrate.quad(density, -10, 10)
    assert expected_maximum_sharpe(n_trials, 4.0) == pytest.approx(2.0 * exact, rel=tolerance)
    with pytest.raises(ValueError, match="n_trials must be an integer >= 2"):
        expected_maximum_sharpe(1, 4.0)


def test_deflation_grows_with_the_number_of_trials():
    estimate = estimate_sharpe(np.random.default_rng(5).normal(0.001, 0.01, size=(750, 3)))
    dsr = [deflated_sharpe_ratio(estimate, n, 0.5) for n in (2, 10, 100, 1000)]
    assert np.all(np.diff(dsr, axis=0) < 0)
    assert np.all(dsr[0] < probabilistic_sharpe_ratio(estimate, 0.0))


def test_pbo_by_hand_with_two_submatrices():
    # Performance = mean return. Block A (rows 1-2) scores [2, -1, 0, 1], block B (rows 3-4)
    # [-1, 1, 0, 3]; row 0 is dropped so the 5 rows split into two equal blocks.
    # Train A: pick config 0, its B score -1 ranks 1 of 4: w = 1/5, logit log(1/4).
    # Train B: pick config 3, its A score 1 ranks 3 of 4: w = 3/5, logit log(3/2).
    a, b = [2.0, -1.0, 0.0, 1.0], [-1.0, 1.0, 0.0, 3.0]
    returns = np.array([[100.0] * 4, a, a, b, b])
    result = probability_of_backtest_overfitting(returns, 2, performance=lambda r: r.mean(axis=0))
    np.testing.assert_allclose(result.logits, [np.log(1 / 4), np.log(3 / 2)])
    np.testing.assert_allclose(result.is_performance, [2.0, 3.0])
    np.testing.assert_allclose(result.oos_performance, [-1.0, 1.0])
    assert result.pbo == 0.5 and result.probability_of_loss == 0.5
    assert result.degradation_slope == pytest.approx(2.0)
    assert result.degradation_intercept == pytest.approx(-5.0)


def test_pbo_near_half_for_noise_and_near_zero_for_a_genuinely_better_config():
    noise_pbo, skill_pbo = [], []
    for seed in range(6):
        noise = np.random.default_rng(seed).normal(0.0, 0.01, size=(1000, 20))
        noise_pbo.append(probability_of_backtest_overfitting(noise, 10).pbo)
        skilled = noise.copy()
        skilled[:, 0] += 0.002                                      # per-bar SR 0.2 vs 0
        result = probability_of_backtest_overfitting(skilled, 10)
        skill_pbo.append(result.pbo)
        assert result.logits.shape == (252,)                        # C(10, 5) combinations
    assert np.mean(noise_pbo) == pytest.approx(0.5, abs=0.1)
    assert max(skill_pbo) < 0.02


def test_pbo_uses_the_metrics_sharpe_by_default():
    r = np.random.default_rng(2).normal(0.0003, 0.01, size=(400, 6))
    result = probability_of_backtest_overfitting(r, 4)
    first_half = np.arange(200)                                     # combination 0: blocks 0, 1
    best = np.argmax(metrics.sharpe_ratio(r[first_half]))
    assert result.is_performance[0] == pytest.approx(metrics.sharpe_ratio(r[first_half])[best])
    assert result.oos_performance[0] == pytest.approx(metrics.sharpe_ratio(r[200:])[best])


def test_pbo_errors():
    r = np.random.default_rng(0).normal(size=(100, 4))
    with pytest.raises(ValueError, match="even integer"):
        probability_of_backtest_overfitting(r, 5)
    with pytest.raises(ValueError, match="cannot make 64 submatrices"):
        probability_of_backtest_overfitting(r, 64)
    r[:, 2] = 0.0                                                   # stays in cash
    with pytest.raises(ValueError, match="configuration 2 is not finite"):
        probability_of_backtest_overfitting(r, 4)
