"""How much of a backtest's Sharpe ratio survives non-normal returns, short samples and the
number of configurations tried: probabilistic and deflated Sharpe ratios, the minimum track
record length, and the probability of backtest overfitting (PBO) by combinatorially symmetric
cross-validation (CSCV).

Units: Sharpe ratios going in and out are annualised under eval.metrics' convention (ddof = 1,
risk-free rate per year). The formulas of Bailey & López de Prado hold for the per-bar Sharpe
ratio, SR / sqrt(periods_per_year), and for track-record lengths in bars; the conversion happens
here. Kurtosis is Pearson's (3 for a normal distribution); skewness and kurtosis are the plain
moment estimators (scipy's bias=True).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from eval import metrics

# Bound on the floats gathered at once when scoring CSCV combinations (about 32 MB).
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class SharpeEstimate:
    """An estimated Sharpe ratio (annualised) with the return moments its sampling error depends
    on: one entry per series, or scalars."""

    sharpe: np.ndarray | float
    skewness: np.ndarray | float
    kurtosis: np.ndarray | float
    n_obs: int
    periods_per_year: float = metrics.TRADING_DAYS


def estimate_sharpe(returns: np.ndarray, risk_free: float = 0.0,
                    periods_per_year: float = metrics.TRADING_DAYS) -> SharpeEstimate:
    """Sharpe ratio, skewness and kurtosis of each return series in (T,) or (T, S)."""
    sharpe = metrics.sharpe_ratio(returns, risk_free, periods_per_year)        # validates input
    r = np.asarray(returns, dtype=np.float64).reshape(len(returns), -1)       # (T, S)
    return SharpeEstimate(sharpe=sharpe, skewness=stats.skew(r, axis=0),
                          kurtosis=stats.kurtosis(r, axis=0, fisher=False), n_obs=r.shape[0],
                          periods_per_year=periods_per_year)


def _per_bar(sharpe: np.ndarray | float, periods_per_year: float) -> np.ndarray:
    return np.asarray(sharpe, dtype=np.float64) / np.sqrt(periods_per_year)


def _sharpe_variance_factor(estimate: SharpeEstimate) -> np.ndarray:
    """1 - skew * SR + (kurt - 1) / 4 * SR^2 for the per-bar SR: (T - 1) times the variance of the
    Sharpe ratio estimator for iid non-normal returns (Mertens 2002; Bailey & López de Prado 2012,
    the PSR's denominator)."""
    sr = _per_bar(estimate.sharpe, estimate.periods_per_year)
    return 1.0 - np.asarray(estimate.skewness) * sr + (np.asarray(estimate.kurtosis) - 1.0) / 4.0 * sr**2


def sharpe_standard_error(estimate: SharpeEstimate) -> np.ndarray:
    """Standard error of the per-bar Sharpe ratio, sqrt(factor / (T - 1)), iid returns assumed."""
    return np.sqrt(_sharpe_variance_factor(estimate) / (estimate.n_obs - 1))


def probabilistic_sharpe_ratio(estimate: SharpeEstimate, benchmark_sharpe: float = 0.0) -> np.ndarray:
    """PSR: the probability that the true Sharpe ratio exceeds `benchmark_sharpe` (annualised),
    Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2)) on per-bar ratios
    (Bailey & López de Prado 2012, "The Sharpe ratio efficient frontier", the PSR)."""
    gap = _per_bar(estimate.sharpe, estimate.periods_per_year) - _per_bar(benchmark_sharpe, estimate.periods_per_year)
    return stats.norm.cdf(gap / sharpe_standard_error(estimate))


def minimum_track_record_length(estimate: SharpeEstimate, benchmark_sharpe: float = 0.0,
                                confidence: float = 0.95) -> np.ndarray:
    """MinTRL in bars: the track record needed for PSR(benchmark_sharpe) to reach `confidence`,
    1 + (1 - skew SR + (kurt - 1) / 4 SR^2) (z_confidence / (SR - SR*))^2 (Bailey & López de
    Prado 2012). Infinite where the estimate does not beat the benchmark."""
    gap = _per_bar(estimate.sharpe, estimate.periods_per_year) - _per_bar(benchmark_sharpe, estimate.periods_per_year)
    z = stats.norm.ppf(confidence)
    with np.errstate(divide="ignore"):
        bars = 1.0 + _sharpe_variance_factor(estimate) * (z / gap) ** 2
    return np.where(gap > 0, bars, np.inf)


def expected_maximum_sharpe(n_trials: int, trials_sharpe_variance: float) -> float:
    """Expected largest Sharpe ratio among `n_trials` independent trials without skill:
    sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g the Euler-Mascheroni constant,
    V the variance of the trials' Sharpe ratios (Bailey & López de Prado 2014, "The deflated
    Sharpe ratio", SR_0). Same units as the Sharpe ratios whose variance V is."""
    if int(n_trials) != n_trials or n_trials < 2:
        raise ValueError(f"n_trials must be an integer >= 2, got {n_trials!r} (one trial has no "
                         "selection bias: use probabilistic_sharpe_ratio against 0)")
    if trials_sharpe_variance < 0:
        raise ValueError(f"trials_sharpe_variance must be >= 0, got {trials_sharpe_variance}")
    g = np.euler_gamma
    quantiles = (1.0 - g) * stats.norm.ppf(1.0 - 1.0 / n_trials) + g * stats.norm.ppf(1.0 - 1.0 / (n_trials * np.e))
    return float(np.sqrt(trials_sharpe_variance) * quantiles)


def deflated_sharpe_ratio(estimate: SharpeEstimate, n_trials: int,
                          trials_sharpe_variance: float) -> np.ndarray:
    """DSR: the PSR against the expected maximum Sharpe ratio of `n_trials` skill-less trials
    (Bailey & López de Prado 2014). `trials_sharpe_variance` is the variance of the trials'
    annualised Sharpe ratios, e.g. np.var(sweep_sharpes, ddof=1); `n_trials` the number of
    independent trials, which may be fewer than the configurations run when they are correlated."""
    return probabilistic_sharpe_ratio(estimate, expected_maximum_sharpe(n_trials, trials_sharpe_variance))


@dataclass(frozen=True)
class BacktestOverfitting:
    """CSCV outcome, one entry per train/test combination of submatrices in the arrays."""

    pbo: float                      # share of combinations with logit <= 0
    logits: np.ndarray              # (C,) logit of the out-of-sample relative rank of the IS best
    is_performance: np.ndarray      # (C,) in-sample performance of the configuration picked
    oos_performance: np.ndarray     # (C,) out-of-sample performance of that configuration
    degradation_slope: float        # OLS slope of oos_performance on is_performance
    degradation_intercept: float
    probability_of_loss: float      # share of combinations where oos_performance < 0


def _score_halves(returns: np.ndarray, halves: np.ndarray,
                  performance: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """(C, N) performance of every configuration on the rows `halves` (C, T/2) of `returns` (T, N),
    scoring many combinations in one call by laying them side by side as columns."""
    n_combos, half = halves.shape
    n_configs = returns.shape[1]
    chunk = max(1, _CHUNK_ELEMENTS // (half * n_configs))
    scores = np.empty((n_combos, n_configs))
    for start in range(0, n_combos, chunk):
        rows = halves[start:start + chunk]                                      # (c, T/2)
        block = returns[rows].transpose(1, 0, 2).reshape(half, -1)            # (T/2, c * N)
        scores[start:start + len(rows)] = np.asarray(performance(block)).reshape(len(rows), n_configs)
    return scores


def probability_of_backtest_overfitting(
        returns: np.ndarray, n_submatrices: int = 16,
        performance: Callable[[np.ndarray], np.ndarray] = metrics.sharpe_ratio) -> BacktestOverfitting:
    """PBO by CSCV (Bailey, Borwein, López de Prado & Zhu 2017, "The probability of backtest
    overfitting", §2).

    `returns` is (T, N): the per-bar returns of N configurations over the same T bars. The rows
    are cut into S = `n_submatrices` contiguous blocks (the T mod S oldest rows are dropped so
    the blocks are equal). For every choice of S/2 blocks as the training set J (the others,
    J-bar, are the test set) the configuration n* with the best in-sample `performance` is
    picked; its test-set relative rank w = rank / (N + 1) gives the logit log(w / (1 - w)). PBO is
    the share of combinations whose logit is <= 0: the pick did no better than the median
    configuration out of sample. `performance` maps a (t, k) return matrix to (k,) scores.
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] < 2:
        raise ValueError(f"returns must be (T, N) with N >= 2 configurations, got shape {r.shape}")
    if int(n_submatrices) != n_submatrices or n_submatrices < 2 or n_submatrices % 2:
        raise ValueError(f"n_submatrices must be an even integer >= 2, got {n_submatrices!r}")
    n_bars, n_configs = r.shape
    block = n_bars // n_submatrices
    if block < 2:
        raise ValueError(f"{n_bars} bars cannot make {n_submatrices} submatrices of >= 2 bars each")
    blocks = np.arange(n_bars - block * n_submatrices, n_bars).reshape(n_submatrices, block)
    chosen = np.array(list(combinations(range(n_submatrices), n_submatrices // 2)))  # (C, S/2)
    in_train = np.zeros((len(chosen), n_submatrices), dtype=bool)
    in_train[np.arange(len(chosen))[:, None], chosen] = True
    held_out = np.nonzero(~in_train)[1].reshape(len(chosen), -1)                     # (C, S/2)
    train_scores = _score_halves(r, blocks[chosen].reshape(len(chosen), -1), performance)
    test_scores = _score_halves(r, blocks[held_out].reshape(len(chosen), -1), performance)
    for name, scores in (("in-sample", train_scores), ("out-of-sample", test_scores)):
        bad = np.argwhere(~np.isfinite(scores))
        if bad.size:
            raise ValueError(f"{name} performance of configuration {bad[0, 1]} is not finite "
                             f"(combination {bad[0, 0]}); is its return series constant?")

    picked = np.argmax(train_scores, axis=1)                                          # (C,)
    rows = np.arange(len(chosen))
    relative_rank = stats.rankdata(test_scores, axis=1)[rows, picked] / (n_configs + 1)
    logits = np.log(relative_rank / (1.0 - relative_rank))
    is_best, oos_of_best = train_scores[rows, picked], test_scores[rows, picked]
    slope, intercept = np.polyfit(is_best, oos_of_best, 1)
    return BacktestOverfitting(pbo=float(np.mean(logits <= 0)), logits=logits,
                               is_performance=is_best, oos_performance=oos_of_best,
                               degradation_slope=float(slope), degradation_intercept=float(intercept),
                               probability_of_loss=float(np.mean(oos_of_best < 0)))
