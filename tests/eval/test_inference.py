"""Sweep statistics against the tests and estimators they wrap, and seed aggregates by hand."""

import numpy as np
import pytest

from eval.aggregate import summarise_scores
from eval.inference import backtest_overfitting, deflated_sharpe, paired_sharpe_tests, seed_aggregate
from eval.overfitting import (
    deflated_sharpe_ratio,
    estimate_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)
from eval.significance import ledoit_wolf_test, memmel_test


@pytest.fixture(scope="module")
def returns():
    return np.random.default_rng(0).normal(0.0004, 0.01, size=(400, 4))


def test_paired_tests_are_memmel_and_ledoit_wolf_on_each_pair(returns):
    table = paired_sharpe_tests(returns[:, 0], {"a": returns[:, 1], "b": returns[:, 2]}, n_resamples=200, seed=5)
    rng = np.random.default_rng(5)
    for name, column in (("a", 1), ("b", 2)):
        robust = ledoit_wolf_test(returns[:, 0], returns[:, column], n_resamples=200, seed=rng)
        assert table.at[name, "ledoit_wolf_p"] == robust.p_value
        assert (table.at[name, "ledoit_wolf_low"], table.at[name, "ledoit_wolf_high"]) == robust.interval
        assert table.at[name, "memmel_p"] == memmel_test(returns[:, 0], returns[:, column]).p_value
        assert table.at[name, "sharpe_difference"] == pytest.approx(robust.estimate)


def test_deflated_sharpe_counts_every_run_as_a_trial(returns):
    table = deflated_sharpe(returns)
    estimate = estimate_sharpe(returns)
    np.testing.assert_allclose(table["psr"], probabilistic_sharpe_ratio(estimate, 0.0))
    np.testing.assert_allclose(table["dsr"], deflated_sharpe_ratio(estimate, 4, np.var(estimate.sharpe, ddof=1)))
    assert (table["dsr"] < table["psr"]).all()
    assert np.isnan(deflated_sharpe(returns[:, :1])["dsr"]).all()


def test_deflated_sharpe_falls_as_the_trials_behind_the_selection_rise(returns):
    """A hyperparameter search's trials count: searching more raises the bar every run must clear."""
    dsr = [deflated_sharpe(returns, n_trials=n)["dsr"].to_numpy() for n in (4, 10, 100, 1000)]
    np.testing.assert_array_equal(dsr[0], deflated_sharpe(returns)["dsr"])
    assert all((later < earlier).all() for earlier, later in zip(dsr, dsr[1:]))
    with pytest.raises(ValueError, match="n_trials=3 is fewer than the 4 runs"):
        deflated_sharpe(returns, n_trials=3)


def test_backtest_overfitting_picks_the_submatrices(returns):
    chosen, reference = backtest_overfitting(returns), probability_of_backtest_overfitting(returns, 16)
    np.testing.assert_array_equal(chosen.logits, reference.logits)
    assert chosen.pbo == reference.pbo
    assert len(backtest_overfitting(returns[:10]).logits) == 6           # S = 4: C(4, 2)
    with pytest.raises(ValueError, match="at least 4 bars, got 3"):
        backtest_overfitting(returns[:3])


def test_seed_aggregate_by_hand():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    stats = seed_aggregate(values, n_resamples=300)
    assert stats["mean"] == 4.0 and stats["std"] == pytest.approx(np.std(values, ddof=1))
    assert stats["iqm"] == pytest.approx(2.5)               # the middle half: 2 and 3
    summary = summarise_scores(values[:, None], 300, seed=0)
    assert (stats["iqm_low"], stats["iqm_high"]) == (summary.iqm.low, summary.iqm.high)
    single = seed_aggregate(np.array([0.7]))
    assert single["mean"] == 0.7 and np.isnan(single["std"]) and np.isnan(single["iqm_low"])
    with pytest.raises(ValueError, match="non-empty finite"):
        seed_aggregate(np.array([1.0, np.nan]))


def test_paired_tests_leave_a_constant_series_out_as_nan(returns):
    table = paired_sharpe_tests(returns[:, 0], {"flat": np.zeros(len(returns)), "b": returns[:, 2]},
                                n_resamples=100, seed=5)
    assert table.loc["flat"].isna().all() and table.loc["b"].notna().all()
