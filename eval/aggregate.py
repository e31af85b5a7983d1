"""Scores across seeds and tasks, reported as Agarwal et al. (2021), "Deep reinforcement learning
at the edge of the statistical precipice", recommend: the interquartile mean (IQM) beside the
mean and median, each with a stratified bootstrap confidence interval, and mean +/- std.

Scores are a (runs, tasks) matrix: one row per seed, one column per task (a market, a test
window, an ablation setting). The statistics reduce the last two axes of (..., runs, tasks), so the
same function scores the data and a stack of bootstrap resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from eval.bootstrap import percentile_interval

Statistic = Callable[[np.ndarray], np.ndarray]


def mean_score(scores: np.ndarray) -> np.ndarray:
    """Mean over runs and tasks (every task weighs the same, as every column has `runs` rows)."""
    return np.asarray(scores).mean(axis=(-2, -1))


def median_score(scores: np.ndarray) -> np.ndarray:
    """Median over tasks of the per-task mean score (rliable's aggregate median)."""
    return np.median(np.asarray(scores).mean(axis=-2), axis=-1)


def interquartile_mean(scores: np.ndarray) -> np.ndarray:
    """Mean of the middle 50 % of all run-task scores pooled: robust to outlier runs, yet less
    noisy than the median (Agarwal et al. 2021, §4.3)."""
    s = np.asarray(scores)
    return stats.trim_mean(s.reshape(*s.shape[:-2], -1), 0.25, axis=-1)


def _check_scores(scores: np.ndarray) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 2:
        raise ValueError(f"scores must be (runs, tasks) with runs >= 2, got shape {s.shape}")
    bad = np.argwhere(~np.isfinite(s))
    if bad.size:
        raise ValueError(f"score of run {bad[0, 0]} on task {bad[0, 1]} is NaN or infinite")
    return s


def stratified_bootstrap(scores: np.ndarray, statistics: Sequence[Statistic],
                         n_resamples: int = 10_000, seed: int | np.random.Generator = 0,
                         chunk_size: int = 1_000) -> np.ndarray:
    """(R, len(statistics)) values of each statistic on R stratified resamples of `scores`: runs
    are drawn with replacement within each task separately, so every resample keeps every task
    with its number of runs (Agarwal et al. 2021, §4.1). All statistics see the same resamples."""
    s = _check_scores(scores)
    n_runs, n_tasks = s.shape
    rng = np.random.default_rng(seed)
    values = np.empty((n_resamples, len(statistics)))
    for start in range(0, n_resamples, chunk_size):
        count = min(chunk_size, n_resamples - start)
        runs = rng.integers(0, n_runs, size=(count, n_runs, n_tasks))
        resampled = s[runs, np.arange(n_tasks)]                                # (c, runs, tasks)
        for j, statistic in enumerate(statistics):
            values[start:start + count, j] = statistic(resampled)
    return values


@dataclass(frozen=True)
class IntervalEstimate:
    """A statistic of the scores with its bootstrap confidence interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class ScoreSummary:
    """Aggregate scores of one method over (runs, tasks)."""

    mean: IntervalEstimate
    median: IntervalEstimate
    iqm: IntervalEstimate
    std: float          # sample std (ddof = 1) across runs of each run's mean over tasks


def summarise_scores(scores: np.ndarray, n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int | np.random.Generator = 0) -> ScoreSummary:
    """Mean, median and IQM with stratified-bootstrap percentile intervals, and the std across
    runs that "mean +/- std" reports."""
    s = _check_scores(scores)
    statistics = (mean_score, median_score, interquartile_mean)
    resampled = stratified_bootstrap(s, statistics, n_resamples, seed)
    estimates = [IntervalEstimate(float(statistic(s)), *percentile_interval(resampled[:, j], confidence))
                 for j, statistic in enumerate(statistics)]
    return ScoreSummary(*estimates, std=float(s.mean(axis=1).std(ddof=1)))
