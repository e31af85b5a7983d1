"""Confidence intervals for a VaR estimate: analytic for the normal VaR, distribution-free for the
historical (and so the Monte Carlo) VaR, and a circular block bootstrap for any estimator.

Each returns (low, high) at coverage `level`, for the VaR at `confidence`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special, stats

from risk import tails
from risk.var import TailRisk, as_series


def check_level(level: float) -> float:
    """The two-sided tail probability (1 - level) / 2 of an interval at coverage `level`."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level={level} must lie strictly between 0 and 1")
    return (1.0 - level) / 2.0


def normal_var_interval(returns: np.ndarray, confidence: float = 0.95,
                        level: float = 0.95) -> tuple[float, float]:
    """Delta-method interval of the normal VaR -mu + z sigma: for normal returns the sample mean
    and standard deviation are independent with variances sigma^2 / n and, asymptotically,
    sigma^2 / (2 (n - 1)), so se(VaR) = sigma * sqrt(1 / n + z^2 / (2 (n - 1)))."""
    r = as_series(returns)
    n = r.shape[0]
    z, _ = tails.normal_multipliers(confidence)
    sigma = r.std(ddof=1)
    estimate = -r.mean() + z * sigma
    half_width = float(special.ndtri(1.0 - check_level(level))) * sigma \
        * math.sqrt(1.0 / n + z * z / (2.0 * (n - 1)))
    return estimate - half_width, estimate + half_width


def historical_var_interval(returns: np.ndarray, confidence: float = 0.95,
                            level: float = 0.95) -> tuple[float, float]:
    """Order-statistic interval, exact for any continuous distribution (coverage >= level).

    The number B of returns at or below the true (1 - confidence) quantile q is
    Binomial(n, 1 - confidence), and x_(l) <= q < x_(u) (1-based order statistics) exactly when
    l <= B <= u - 1. With l the tail-probability quantile of B and u - 1 its upper quantile the
    bracket holds with probability at least `level`; the VaR interval is [-x_(u), -x_(l)], open
    (infinite) on a side the sample is too short to bound.
    """
    tails.check_confidence(confidence)
    r = np.sort(as_series(returns, minimum=1))
    n, tail = r.shape[0], check_level(level)
    binomial = stats.binom(n, 1.0 - confidence)
    lower_rank = int(binomial.ppf(tail))
    upper_rank = int(binomial.ppf(1.0 - tail)) + 1
    high = -r[lower_rank - 1] if lower_rank >= 1 else math.inf
    low = -r[upper_rank - 1] if upper_rank <= n else -math.inf
    return float(low), float(high)


def bootstrap_var_interval(returns: np.ndarray, estimator: Callable[[np.ndarray, float], TailRisk],
                           rng: np.random.Generator, confidence: float = 0.95,
                           level: float = 0.95, n_resamples: int = 1000,
                           block_length: int = 1) -> tuple[float, float]:
    """Percentile interval of `estimator(returns, confidence).var` over circular block bootstrap
    resamples (`block_length` 1 is the iid bootstrap; longer blocks keep volatility clusters)."""
    r = as_series(returns)
    n, tail = r.shape[0], check_level(level)
    if not 1 <= block_length <= n:
        raise ValueError(f"block_length={block_length} must lie in [1, {n}]")
    n_blocks = -(-n // block_length)
    offsets = np.arange(block_length)
    estimates = np.empty(n_resamples)
    for b in range(n_resamples):
        starts = rng.integers(0, n, n_blocks)
        index = ((starts[:, None] + offsets) % n).ravel()[:n]                    # (n,)
        estimates[b] = estimator(r[index], confidence).var
    low, high = np.quantile(estimates, [tail, 1.0 - tail])
    return float(low), float(high)
