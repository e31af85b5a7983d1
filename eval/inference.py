"""Statistics of a results table across a sweep: paired Sharpe-difference tests of a policy
against each baseline, probabilistic and deflated Sharpe ratios with the number of trials the
sweep ran, the probability of backtest overfitting across its runs, and aggregates over seeds.

Series of one table share their dates (one market's test split); a sweep's return matrix is
(T, R), one column per run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval import metrics
from eval.aggregate import summarise_scores
from eval.overfitting import (
    BacktestOverfitting,
    deflated_sharpe_ratio,
    estimate_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from eval.significance import ledoit_wolf_test, memmel_test


def paired_sharpe_tests(policy: np.ndarray, baselines: dict[str, np.ndarray], n_resamples: int = 10_000,
                        seed: int | np.random.Generator = 0,
                        periods_per_year: float = metrics.TRADING_DAYS) -> pd.DataFrame:
    """Rows: baselines; columns: the annualised Sharpe difference policy - baseline, Memmel's
    p-value, and the Ledoit-Wolf bootstrap p-value and 95 % interval of the difference; NaN in
    a row where either series is constant (a book that never trades has no Sharpe ratio)."""
    rng = np.random.default_rng(seed)
    rows = {}
    policy_is_constant = np.ptp(policy) == 0
    for name, baseline in baselines.items():
        if policy_is_constant or np.ptp(baseline) == 0:
            rows[name] = dict.fromkeys(("sharpe_difference", "memmel_p", "ledoit_wolf_p", "ledoit_wolf_low",
                                        "ledoit_wolf_high"), np.nan)
            continue
        closed_form = memmel_test(policy, baseline, periods_per_year=periods_per_year)
        robust = ledoit_wolf_test(policy, baseline, n_resamples=n_resamples, seed=rng,
                                  periods_per_year=periods_per_year)
        rows[name] = {"sharpe_difference": robust.estimate, "memmel_p": closed_form.p_value,
                      "ledoit_wolf_p": robust.p_value, "ledoit_wolf_low": robust.interval[0],
                      "ledoit_wolf_high": robust.interval[1]}
    return pd.DataFrame.from_dict(rows, orient="index")


def deflated_sharpe(returns: np.ndarray, periods_per_year: float = metrics.TRADING_DAYS,
                    n_trials: int | None = None) -> pd.DataFrame:
    """One row per run (column of `returns`): its Sharpe ratio, PSR against zero, and DSR with
    `n_trials` trials (default: the number of runs; a hyperparameter search adds its trials) and
    the variance of the runs' Sharpe ratios (NaN for a single run, which has no selection to
    deflate)."""
    r = np.asarray(returns, dtype=np.float64)
    estimate = estimate_sharpe(r, 0.0, periods_per_year)
    n_runs = r.shape[1]
    n_trials = n_runs if n_trials is None else n_trials
    if n_trials < n_runs:
        raise ValueError(f"n_trials={n_trials} is fewer than the {n_runs} runs it selects among")
    dsr = (deflated_sharpe_ratio(estimate, n_trials, float(np.var(estimate.sharpe, ddof=1)))
           if n_runs >= 2 else np.full(n_runs, np.nan))
    return pd.DataFrame({"sharpe": estimate.sharpe, "psr": probabilistic_sharpe_ratio(estimate, 0.0), "dsr": dsr})


def backtest_overfitting(returns: np.ndarray, max_submatrices: int = 16) -> BacktestOverfitting:
    """PBO by CSCV across the runs (columns) of `returns` (T, R), with the largest even number
    of submatrices up to `max_submatrices` that leaves each at least 2 bars."""
    n_bars = np.asarray(returns).shape[0]
    submatrices = min(max_submatrices, n_bars // 2) // 2 * 2
    if submatrices < 2:
        raise ValueError(f"PBO needs at least 4 bars, got {n_bars}")
    return probability_of_backtest_overfitting(returns, submatrices)


def seed_aggregate(values: np.ndarray, n_resamples: int = 10_000, seed: int | np.random.Generator = 0,
                   confidence: float = 0.95) -> dict[str, float]:
    """Mean, std (ddof 1), median and IQM of a metric across seeds, with stratified-bootstrap
    intervals of the mean and the IQM (rliable); intervals and std are NaN for one seed."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 1 or not np.isfinite(v).all():
        raise ValueError(f"values must be a non-empty finite series over seeds, got {v}")
    if v.size == 1:
        return {"n": 1.0, "mean": float(v[0]), "std": np.nan, "median": float(v[0]), "iqm": float(v[0]),
                "mean_low": np.nan, "mean_high": np.nan, "iqm_low": np.nan, "iqm_high": np.nan}
    summary = summarise_scores(v[:, None], n_resamples, confidence, seed)
    return {"n": float(v.size), "mean": summary.mean.value, "std": summary.std, "median": summary.median.value,
            "iqm": summary.iqm.value, "mean_low": summary.mean.low, "mean_high": summary.mean.high,
            "iqm_low": summary.iqm.low, "iqm_high": summary.iqm.high}
