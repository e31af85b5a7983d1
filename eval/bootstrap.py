"""Sampling distributions of a strategy's Sharpe ratio, maximum drawdown and VaR by the
stationary block bootstrap (Politis & Romano 1994), which resamples blocks of random,
geometrically distributed length and so keeps the serial dependence of returns (volatility
clustering) that an iid bootstrap would destroy. Resampling is arch's StationaryBootstrap; the
metrics are eval.metrics, computed on a (T, R) matrix of resampled series, chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from arch.bootstrap import StationaryBootstrap, optimal_block_length

from eval import metrics


@dataclass(frozen=True)
class ResampledMetrics:
    """Metrics of each of R bootstrap resamples of one return series."""

    block_length: float          # expected block length used, in bars
    sharpe: np.ndarray           # (R,) annualised Sharpe ratio
    max_drawdown: np.ndarray     # (R,) worst drawdown, a negative fraction
    value_at_risk: np.ndarray    # (R,) historical VaR, a positive loss

    def confidence_intervals(self, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
        """Percentile interval of every metric, keyed by field name."""
        return {f.name: percentile_interval(getattr(self, f.name), confidence)
                for f in fields(self) if f.name != "block_length"}


def _as_series(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.size < 2:
        raise ValueError(f"returns must be one series of shape (T,) with T >= 2, got shape {r.shape}")
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise ValueError(f"returns are NaN or infinite at bars {bad[:5].tolist()}")
    return r


def expected_block_length(returns: np.ndarray) -> float:
    """Expected block length for the stationary bootstrap: the larger of arch's optimal lengths
    (Politis & White 2004, corrected by Patton, Politis & White 2009) for the returns and for the
    squared returns, at least one bar. The Sharpe ratio, drawdown and VaR depend on volatility as
    much as on the mean, so the blocks must keep volatility clustering, which shows in r^2 even
    when r itself is serially uncorrelated."""
    r = _as_series(returns)
    return max(1.0, float(optimal_block_length(np.column_stack([r, r**2]))["stationary"].max()))


def stationary_bootstrap_metrics(returns: np.ndarray, n_resamples: int = 10_000,
                                 block_length: float | None = None,
                                 seed: int | np.random.Generator = 0, risk_free: float = 0.0,
                                 periods_per_year: float = metrics.TRADING_DAYS,
                                 alpha: float = 0.95, chunk_size: int = 1_000) -> ResampledMetrics:
    """Sharpe ratio, maximum drawdown and VaR(alpha) of `n_resamples` stationary-bootstrap
    resamples of `returns` (T,). `block_length` is the expected block length in bars (by default
    `expected_block_length(returns)`). Resamples are drawn and scored `chunk_size` at a time, which
    bounds memory at about T * chunk_size floats per array; the draws, and so the results, do not
    depend on `chunk_size`, only on `seed`."""
    r = _as_series(returns)
    if n_resamples < 1 or chunk_size < 1:
        raise ValueError(f"n_resamples and chunk_size must be >= 1, got {n_resamples} and {chunk_size}")
    block = expected_block_length(r) if block_length is None else float(block_length)
    if block < 1:
        raise ValueError(f"block_length must be >= 1 bar, got {block_length}")
    resampler = StationaryBootstrap(block, r, seed=np.random.default_rng(seed))
    draws = resampler.bootstrap(n_resamples)
    sharpe, max_dd, var = (np.empty(n_resamples) for _ in range(3))
    for start in range(0, n_resamples, chunk_size):
        count = min(chunk_size, n_resamples - start)
        paths = np.stack([next(draws)[0][0] for _ in range(count)], axis=1)   # (T, count)
        done = slice(start, start + count)
        sharpe[done] = metrics.sharpe_ratio(paths, risk_free, periods_per_year)
        max_dd[done] = metrics.max_drawdown(paths)
        var[done] = metrics.value_at_risk(paths, alpha)
    return ResampledMetrics(block_length=block, sharpe=sharpe, max_drawdown=max_dd, value_at_risk=var)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap `samples` (Efron & Tibshirani 1993, §13.3).
    NaN samples (a Sharpe ratio of a resample that never moved) are left out."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    low, high = np.nanquantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)
