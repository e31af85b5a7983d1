"""Metrics against empyrical (a test-only reference) on the same series, vectorised over series.

Convention differences, stated: empyrical's drawdown peak starts at the first bar's wealth, ours
at the initial capital (a loss on the first bar is a drawdown here); VaR/CVaR are positive losses
here and negative returns in empyrical, and our CVaR averages returns at or below the
interpolated quantile rather than empyrical's partition index.
"""

import empyrical
import numpy as np
import pytest

from eval import metrics


@pytest.fixture(scope="module")
def returns():
    rng = np.random.default_rng(0)
    r = rng.standard_t(4, size=(750, 5)) * 0.01 + np.array([0.0005, 0.0, -0.0003, 0.001, 0.0002])
    r[0] = 0.004                          # first bar a gain: both drawdown conventions agree
    return r


@pytest.mark.parametrize("rf", [0.0, 0.02])
def test_ratios_match_empyrical(returns, rf):
    rf_bar = (1 + rf) ** (1 / 252) - 1
    for s in range(returns.shape[1]):
        r = returns[:, s]
        assert metrics.sharpe_ratio(r, rf)[0] == pytest.approx(empyrical.sharpe_ratio(r, rf_bar), rel=1e-10)
        assert metrics.sortino_ratio(r, rf)[0] == pytest.approx(empyrical.sortino_ratio(r, rf_bar), rel=1e-10)


def test_returns_and_risk_match_empyrical(returns):
    ours = metrics.summary(returns)
    for s in range(returns.shape[1]):
        r = returns[:, s]
        assert ours["cum_return"][s] == pytest.approx(empyrical.cum_returns_final(r), rel=1e-10)
        assert ours["ann_return"][s] == pytest.approx(empyrical.annual_return(r), rel=1e-10)
        assert ours["ann_vol"][s] == pytest.approx(empyrical.annual_volatility(r), rel=1e-10)
        assert ours["max_drawdown"][s] == pytest.approx(empyrical.max_drawdown(r), rel=1e-10)
        assert ours["calmar"][s] == pytest.approx(empyrical.calmar_ratio(r), rel=1e-10)
        assert ours["var"][s] == pytest.approx(-empyrical.value_at_risk(r, cutoff=0.05), rel=1e-10)
        tail = r[r <= np.quantile(r, 0.05)]
        assert ours["cvar"][s] == pytest.approx(-tail.mean(), rel=1e-12)
        assert abs(ours["cvar"][s] + empyrical.conditional_value_at_risk(r, cutoff=0.05)) < 5e-4


def test_vectorised_equals_one_by_one(returns):
    together = metrics.summary(returns)
    for s in range(returns.shape[1]):
        alone = metrics.summary(returns[:, s])
        for name, values in together.items():
            np.testing.assert_allclose(values[s], alone[name][0], rtol=1e-12, equal_nan=True)


def test_drawdown_from_initial_capital_and_durations():
    r = np.array([-0.1, 0.05, 0.06, -0.2, 0.1, 0.2, 0.0])
    dd = metrics.drawdown(r)[:, 0]
    assert dd[0] == pytest.approx(-0.1)              # the first loss counts (peak = capital 1)
    assert metrics.max_drawdown(r)[0] == pytest.approx(1.0113 * 0.8 / 1.0113 - 1)
    longest, recovery = metrics.drawdown_durations(r)
    assert longest[0] == 2 and recovery[0] == 2      # trough at bar 3, back above peak at bar 5
    _, never = metrics.drawdown_durations(np.array([0.1, -0.5, 0.1]))
    assert np.isnan(never[0])


def test_hit_rate_win_loss_turnover_exposure():
    r = np.array([0.02, -0.01, 0.0, 0.03, -0.03])
    assert metrics.hit_rate(r)[0] == pytest.approx(2 / 4)
    assert metrics.win_loss_ratio(r)[0] == pytest.approx(0.025 / 0.02)
    w = np.array([[0.5, -0.5], [0.5, -0.5], [1.0, 0.0]])
    # entry trades 1.0 (half: 0.5), then 0, then 1.0 (half: 0.5): mean 1/3 per bar
    assert metrics.turnover(w, periods_per_year=1)[0] == pytest.approx(1 / 3)
    np.testing.assert_allclose(metrics.exposure_by_domain(w, np.array([0, 1]), 2), [2 / 3, 1 / 3])


def test_bad_input_raises():
    with pytest.raises(ValueError, match="NaN"):
        metrics.sharpe_ratio(np.array([0.1, np.nan, 0.2]))
    with pytest.raises(ValueError, match="T >= 2"):
        metrics.sharpe_ratio(np.array([0.1]))
