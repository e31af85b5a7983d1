"""Aggregates over seeds and tasks: IQM against scipy, stratification, intervals, determinism."""

import numpy as np
import pytest
from scipy import stats

from eval.aggregate import (
    interquartile_mean,
    mean_score,
    median_score,
    stratified_bootstrap,
    summarise_scores,
)


def test_iqm_matches_scipy_trim_mean_of_the_flattened_scores():
    scores = np.random.default_rng(0).standard_t(3, size=(10, 7))
    assert interquartile_mean(scores) == pytest.approx(stats.trim_mean(scores.ravel(), 0.25))


def test_statistics_by_hand():
    scores = np.array([[1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [4.0, 100.0]])
    # IQM: drop the 2 lowest (1, 2) and 2 highest (8, 100) of 8 scores: mean(3, 4, 6, 7) = 5
    assert interquartile_mean(scores) == pytest.approx(5.0)
    assert mean_score(scores) == pytest.approx(131 / 8)
    assert median_score(scores) == pytest.approx((2.5 + 30.25) / 2)    # two task means
    summary = summarise_scores(scores, n_resamples=200)
    # per-run means over tasks 4.5, 4.5, 4.5, 52; their mean 16.375:
    # std = sqrt((3 * 11.875^2 + 35.625^2) / 3) = sqrt(564.0625) = 23.75
    assert summary.std == pytest.approx(23.75)
    assert summary.iqm.value == pytest.approx(5.0)


def test_statistics_reduce_the_last_two_axes_of_a_stack():
    stack = np.random.default_rng(1).normal(size=(5, 8, 3))
    for statistic in (mean_score, median_score, interquartile_mean):
        np.testing.assert_allclose(statistic(stack), [statistic(s) for s in stack])


def test_resampling_is_stratified_by_task():
    # every run scores the same on a task, tasks differ: a stratified resample keeps each task's
    # runs, so every statistic is unchanged; pooling runs across tasks would not be
    scores = np.tile([0.0, 1.0, 5.0], (6, 1))
    values = stratified_bootstrap(scores, [mean_score, interquartile_mean], n_resamples=300)
    np.testing.assert_allclose(values[:, 0], 2.0)
    np.testing.assert_allclose(values[:, 1], interquartile_mean(scores))


def test_same_seed_same_intervals_whatever_the_chunk_size():
    scores = np.random.default_rng(2).normal(size=(5, 4))
    first = stratified_bootstrap(scores, [interquartile_mean], n_resamples=500, seed=3, chunk_size=64)
    again = stratified_bootstrap(scores, [interquartile_mean], n_resamples=500, seed=3, chunk_size=500)
    other = stratified_bootstrap(scores, [interquartile_mean], n_resamples=500, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert summarise_scores(scores, 500, seed=3) == summarise_scores(scores, 500, seed=3)


def test_mean_interval_covers_the_true_mean_about_as_often_as_it_says():
    rng = np.random.default_rng(5)
    task_means = np.array([0.0, 1.0, 2.0, 3.0])
    covered = []
    for seed in range(200):
        scores = task_means + rng.normal(size=(20, 4))
        mean = summarise_scores(scores, n_resamples=500, confidence=0.9, seed=seed).mean
        covered.append(mean.low <= task_means.mean() <= mean.high)
    assert np.mean(covered) == pytest.approx(0.9, abs=0.06)


def test_bad_scores_are_named():
    with pytest.raises(ValueError, match="runs >= 2"):
        summarise_scores(np.ones((1, 3)))
    with pytest.raises(ValueError, match="run 2 on task 1 is NaN"):
        summarise_scores(np.array([[1.0, 2.0], [1.0, 2.0], [1.0, np.nan]]))
