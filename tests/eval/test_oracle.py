"""The cost-aware oracle: no look-ahead, the plain oracle at band 0 and full adjustment, a better
validation Sharpe after costs at a fraction of the turnover, and tuning on validation only."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import eval.backtest as backtest
import eval.oracle as oracle
from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.synthetic import SyntheticConfig, generate
from eval.backtest import run, run_schedule, scale_costs, tune_cost_aware_oracle
from eval.baselines import BaselineConfig, baseline_weights
from eval.oracle import (
    ORACLE_COST_AWARE,
    OracleGrid,
    OracleParams,
    cost_aware_oracle,
)
from risk.limits import RiskLimits

ENV = EnvConfig(warmup_bars=20)
LIMITS = RiskLimits()


@pytest.fixture(scope="module")
def market() -> MarketData:
    return generate(SyntheticConfig(years=4.0, seed=3))


def window(market: MarketData, part: str) -> MarketData:
    """The split's bars and `ENV.warmup_bars` of history before them (as `Workspace.window`)."""
    split = market.split_fractions(0.4, 0.3)[part]
    start = int(market.timestamps.get_loc(split.timestamps[0]))
    return market.slice_time(start - ENV.warmup_bars, start + split.n_bars)


@pytest.fixture(scope="module")
def tuning(market) -> oracle.OracleTuning:
    return tune_cost_aware_oracle(window(market, "validation"), ENV, LIMITS)


def decisions(market: MarketData, params: OracleParams) -> np.ndarray:
    """(T, N) the oracle's targets bar by bar, walked behind the overlay with the market's costs."""
    decide = cost_aware_oracle(params)(market, ENV.warmup_bars)
    seen = []

    def record(env):
        targets = decide(env)
        seen.append(targets[0].copy())
        return targets
    run(ORACLE_COST_AWARE, market, ENV, record, limits=LIMITS)
    return np.asarray(seen)


def perturbed_after(market: MarketData, t: int) -> MarketData:
    """`market` with prices and ground truth changed on every bar after `t`."""
    ohlcv = market.ohlcv.copy()
    ohlcv[t + 1:, :, :4] *= (1.0 + 0.1 * np.sign(np.arange(market.n_instruments) - 3.5))[:, None]
    truth = market.ground_truth
    later = np.arange(market.n_bars) > t
    truth = dataclasses.replace(
        truth, regime=np.where(later, (truth.regime + 1) % 3, truth.regime),
        expected_returns=np.where(later[:, None], -truth.expected_returns, truth.expected_returns),
        conditional_vol=np.where(later[:, None], 2.0 * truth.conditional_vol, truth.conditional_vol))
    return dataclasses.replace(market, ohlcv=ohlcv, ground_truth=truth)


def test_no_look_ahead(market):
    walked = market.slice_time(0, 300)
    params = OracleParams(risk_aversion=250.0, band=0.05, rate=0.3)
    t = 150
    base, changed = decisions(walked, params), decisions(perturbed_after(walked, t), params)
    decided = t - ENV.warmup_bars + 1                                   # decisions at bars <= t
    np.testing.assert_array_equal(base[:decided], changed[:decided])
    assert not np.allclose(np.nan_to_num(base[decided:]), np.nan_to_num(changed[decided:]))
    # the decision at t reads ground-truth row t: changing it from t on changes that decision
    from_t = decisions(perturbed_after(walked, t - 1), params)
    assert not np.allclose(np.nan_to_num(base[decided - 1]), np.nan_to_num(from_t[decided - 1]))


def test_band_zero_full_adjustment_is_the_plain_oracle(market):
    walked = scale_costs(window(market, "validation"), 0.0)
    config = BaselineConfig()
    params = OracleParams(config.oracle_risk_aversion, band=0.0, rate=1.0, max_leverage=config.max_leverage)
    plain = run_schedule("oracle", walked, ENV, baseline_weights("oracle", walked, config, start=ENV.warmup_bars),
                         LIMITS)
    aware = run(ORACLE_COST_AWARE, walked, ENV, cost_aware_oracle(params)(walked, ENV.warmup_bars), limits=LIMITS)
    np.testing.assert_allclose(aware.weights, plain.weights, rtol=0, atol=1e-12)
    np.testing.assert_allclose(aware.returns, plain.returns, rtol=0, atol=1e-12)
    assert plain.costs.sum() < 1e-6                                      # no trading costs


def test_tuned_beats_the_plain_oracle_after_costs_with_far_less_turnover(market, tuning):
    validation = window(market, "validation")
    schedule = baseline_weights("oracle", validation, BaselineConfig(), start=ENV.warmup_bars)
    plain = run_schedule("oracle", validation, ENV, schedule, LIMITS).summary()
    best = tuning.results.loc[tuning.results["sharpe"].idxmax()]
    assert best["sharpe"] >= plain["sharpe"]
    assert best["turnover"] < 0.2 * plain["turnover"]
    assert plain["sharpe"] < 0 < best["sharpe"]                          # costs eat the plain oracle


def test_tuning_is_deterministic_and_walks_validation_only(market, tuning, monkeypatch):
    validation = window(market, "validation")
    walked = []
    original = backtest.run_policy

    def spy(name, walked_market, *args, **kwargs):
        walked.append(walked_market.timestamps)
        return original(name, walked_market, *args, **kwargs)
    monkeypatch.setattr(backtest, "run_policy", spy)
    again = tune_cost_aware_oracle(validation, ENV, LIMITS)
    pd.testing.assert_frame_equal(again.results, tuning.results)
    assert again.params == tuning.params
    grid = OracleGrid().configurations()
    assert again.configurations == len(grid) == len(walked) == 27
    assert again.params == grid[int(tuning.results["sharpe"].idxmax())]
    assert all(stamps.equals(validation.timestamps) for stamps in walked)
    assert window(market, "test").timestamps[-1] > validation.timestamps[-1]


def test_needs_ground_truth(market):
    plain = dataclasses.replace(market, name="csv_prices", ground_truth=None)
    with pytest.raises(ValueError, match="'csv_prices' has none"):
        cost_aware_oracle(OracleParams())(plain, ENV.warmup_bars)
    with pytest.raises(ValueError, match="0 < rate <= 1"):
        cost_aware_oracle(OracleParams(rate=0.0))(market, ENV.warmup_bars)
