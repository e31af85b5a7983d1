"""Monte Carlo and stress scenarios: bootstrap pooling, window metrics by hand, crash paths against
their twins, crisis windows of the US sector universe, rolling VaR and its backtests."""

import dataclasses

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.synthetic import REGIMES, SyntheticConfig
from eval import metrics
from eval.backtest import run_schedule
from eval.baselines import BaselineConfig, baseline_policy, baseline_weights
from eval.bootstrap import stationary_bootstrap_metrics
from eval.stress import (
    bootstrap_quantiles,
    crash_scenarios,
    crash_stress,
    historical_stress,
    rolling_var,
    var_backtest,
    window_metrics,
)
from risk.backtests import backtest_var
from risk.var import historical_var, normal_var


def _garch(n_bars: int, rng: np.random.Generator) -> np.ndarray:
    """GARCH(1,1) returns: volatility clusters, so VaR exceptions of a slow forecast cluster too."""
    r, h = np.empty(n_bars), 1e-4
    for t in range(n_bars):
        r[t] = np.sqrt(h) * rng.standard_normal()
        h = 2e-6 + 0.15 * r[t] ** 2 + 0.83 * h
    return r


def test_bootstrap_quantiles_pool_every_seeds_resamples():
    rng = np.random.default_rng(3)
    series = [rng.normal(0.0005, 0.01, 300), rng.normal(0.0, 0.012, 300)]
    table = bootstrap_quantiles(series, n_resamples=200, seed=7)
    children = np.random.default_rng(7).spawn(2)
    draws = [stationary_bootstrap_metrics(r, 200, seed=child) for r, child in zip(series, children)]
    sharpe = np.concatenate([d.sharpe for d in draws])
    drawdown = np.concatenate([d.max_drawdown for d in draws])
    assert table.at["sharpe", "q0.05"] == pytest.approx(np.quantile(sharpe, 0.05))
    assert table.at["max_drawdown", "q0.5"] == pytest.approx(np.quantile(drawdown, 0.5))
    assert table.at["sharpe", "p_below_zero"] == pytest.approx(np.mean(sharpe < 0))
    assert table.at["var", "observed"] == pytest.approx(np.mean([metrics.value_at_risk(r)[0] for r in series]))
    assert table.equals(bootstrap_quantiles(series, n_resamples=200, seed=7))


def test_window_metrics_by_hand():
    stats = window_metrics(np.array([0.1, -0.2, 0.05]))
    # wealth 1.1, 0.88, 0.924: the window loses 7.6 %, its trough is 20 % under the 1.1 peak
    assert stats["window_return"] == pytest.approx(1.1 * 0.8 * 1.05 - 1)
    assert stats["max_drawdown"] == pytest.approx(0.88 / 1.1 - 1)
    assert stats["worst_bar"] == -0.2 and stats["n_bars"] == 3
    with pytest.raises(ValueError, match="at least 2 bars"):
        window_metrics(np.array([0.1]))


@pytest.fixture(scope="module")
def scenarios():
    return crash_scenarios(SyntheticConfig(), n_paths=2, rng=np.random.default_rng(0), years=1.5,
                           start=200, length=40)


def test_crash_scenarios_force_the_window_and_keep_a_twin(scenarios):
    again = crash_scenarios(SyntheticConfig(), 2, np.random.default_rng(0), years=1.5, start=200, length=40)
    assert [s.seed for s in scenarios] == [s.seed for s in again] and scenarios[0].seed != scenarios[1].seed
    for scenario in scenarios:
        np.testing.assert_array_equal(scenario.crash.ground_truth.regime[200:240], REGIMES.index("volatile"))
        assert scenario.crash.ohlcv[:200].tobytes() == scenario.calm.ohlcv[:200].tobytes()
        assert scenario.calm.attrs["forced_regimes"] == []


def test_crash_stress_scores_the_window_against_the_twin(scenarios):
    config = EnvConfig()
    daily = BaselineConfig(rebalance_every=1)
    equal = lambda market, start: (lambda env: np.full((1, market.n_instruments), 1.0 / market.n_instruments))
    table = crash_stress({"schedule": baseline_policy("equal_weight", daily), "decide": equal}, scenarios, config)
    assert len(table) == 4
    # a schedule and a decide function that hold the same weights walk the same path
    by_policy = table.set_index(["policy", "path_seed"])
    np.testing.assert_allclose(by_policy.loc["schedule"].to_numpy(), by_policy.loc["decide"].to_numpy(), rtol=1e-12)
    scenario = scenarios[0]
    crash = run_schedule("equal_weight", scenario.crash, config,
                         baseline_weights("equal_weight", scenario.crash, daily, start=config.warmup_bars))
    inside = np.isin(crash.timestamps, scenario.crash.timestamps[200:240])
    row = by_policy.loc[("schedule", scenario.seed)]
    assert row.window_return == pytest.approx(np.prod(1 + crash.returns[inside]) - 1)
    assert row.n_bars == 40
    assert row.crash_cost == pytest.approx(row.window_return - row.calm_window_return)
    assert table.crash_cost.mean() < 0                    # a long-only book loses in the crash


@pytest.fixture(scope="module")
def sectors():
    from envs.samples import load_sample

    return load_sample("us_equity_sectors")


def test_crisis_windows_of_the_sector_universe(sectors):
    config = EnvConfig()
    table = historical_stress({"buy_and_hold": baseline_policy("buy_and_hold")}, sectors, config)
    assert table.window.tolist() == ["gfc_2008", "covid_2020"]
    gfc = sectors.between("2008-09-01", "2009-03-31")
    row = table.iloc[0]
    assert row.start == "2008-09-02" and row.n_bars == gfc.n_bars        # 1 September 2008 was Labor Day
    # bought at the fill of the window's first bar (closes only: the previous close) and held: the
    # equal-weight mean of the price relatives, less the costs of one trade
    before = int(sectors.timestamps.get_loc(gfc.timestamps[0])) - 1
    relatives = gfc.close[-1] / sectors.close[before]
    assert row.window_return == pytest.approx(relatives.mean() - 1, abs=2e-3)
    assert row.window_return < -0.2 and table.iloc[1].max_drawdown < -0.25


def test_crisis_window_needs_its_lead_in(sectors):
    with pytest.raises(ValueError, match="window 'early' starts at 1990-02-01.*fewer than lead_in=252"):
        historical_stress({"equal_weight": baseline_policy("equal_weight")}, sectors, EnvConfig(),
                          windows={"early": ("1990-02-01", "1990-03-01")})


def test_rolling_var_uses_only_the_window_before_each_bar():
    r = np.random.default_rng(1).standard_t(4, 400) * 0.01
    forecast = rolling_var(r, window=100, confidence=0.99)
    assert np.isnan(forecast[:100]).all()
    assert forecast[100] == pytest.approx(-np.quantile(r[:100], 0.01))
    assert forecast[250] == historical_var(r[150:250], 0.99).var
    assert rolling_var(r, 100, 0.95, "normal")[300] == normal_var(r[200:300], 0.95).var
    with pytest.raises(KeyError, match="'garch' is not one of"):
        rolling_var(r, 100, method="garch")
    with pytest.raises(ValueError, match="window=400 must be in 2 .. 399"):
        rolling_var(r, 400)


def test_var_backtest_accepts_a_right_model_and_rejects_a_slow_one():
    iid = np.random.default_rng(2).normal(0.0, 0.01, 5000)
    right = var_backtest(iid, window=250, confidence=0.99, method="normal")
    assert right.n_bars == 4750
    assert right.n_exceptions / right.n_bars == pytest.approx(0.01, abs=0.004)
    assert right.kupiec.p_value > 0.05 and right.conditional_coverage.p_value > 0.05
    clustered = _garch(5000, np.random.default_rng(3))
    slow = var_backtest(clustered, window=250, confidence=0.99, method="historical")
    assert slow.independence.p_value < 0.05                   # exceptions bunch in volatile spells
    expected = backtest_var(clustered[250:], rolling_var(clustered, 250, 0.99)[250:], 0.99)
    assert slow == expected


def test_baseline_policy_plans_from_the_first_decision_bar(scenarios):
    market = scenarios[0].calm
    plan = baseline_policy("buy_and_hold")(market, 37)
    assert np.flatnonzero(~np.isnan(plan).any(axis=1)).tolist() == [37]
    config = dataclasses.replace(EnvConfig(), warmup_bars=37)
    assert run_schedule("b", market, config, plan).turnover[0] > 0.9
    with pytest.raises(KeyError, match="unknown baseline 'astrology'"):
        baseline_policy("astrology")
