"""Backtests through the simulator: the accounting closes, holding is exact, costs scale."""

import dataclasses

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from eval.backtest import (
    cost_stress,
    replay_schedule,
    run_policy,
    run_schedule,
    run_system,
    scale_costs,
    window_returns,
)
from eval.baselines import baseline_weights
from learners.run.folder import write_frames


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=1.5, seed=3))


def test_equal_weight_backtest_closes_and_summarises(market, tmp_path):
    config = EnvConfig()
    schedule = baseline_weights("equal_weight", market, start=config.warmup_bars)
    result = run_schedule("equal_weight", market, config, schedule)
    assert len(result.returns) == market.n_bars - 1 - config.warmup_bars
    wealth = config.initial_equity * np.prod(1 + result.returns)
    assert wealth == pytest.approx(result.equity[-1], rel=1e-10)
    stats = result.summary()
    assert {"sharpe", "ann_return", "ann_vol", "max_drawdown", "turnover", "costs"} <= set(stats)
    assert stats["costs"] > 0 and stats["turnover"] > 0
    # each instrument's contribution (PnL - costs over equity before the bar) adds up to the return
    np.testing.assert_allclose(result.contributions.sum(axis=1), result.returns, atol=1e-12)
    write_frames(tmp_path, result.name, result.frames(market.symbols))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "equal_weight_contributions.parquet", "equal_weight_costs.parquet",
        "equal_weight_returns.parquet", "equal_weight_weights.parquet"]


def test_buy_and_hold_trades_once_and_pre_cost_is_cheaper(market):
    schedule = baseline_weights("buy_and_hold", market, start=EnvConfig().warmup_bars)
    held = run_schedule("buy_and_hold", market, EnvConfig(), schedule)
    assert (held.turnover[1:] == 0).all() and held.turnover[0] > 0.9
    free = run_schedule("buy_and_hold", scale_costs(market, 0.0), EnvConfig(), schedule)
    double = run_schedule("buy_and_hold", scale_costs(market, 2.0), EnvConfig(), schedule)
    assert free.equity[-1] > held.equity[-1] > double.equity[-1]
    trading = [0, 1, 2, 3]                                   # spread, commission, slippage, impact
    assert free.costs[:, trading].sum() == 0.0
    assert double.costs[0, trading].sum() == pytest.approx(2 * held.costs[0, trading].sum(), rel=1e-9)


def test_schedule_shape_is_checked(market):
    with pytest.raises(ValueError, match="expected"):
        run_schedule("bad", market, EnvConfig(), np.zeros((3, 3)))


def test_system_backtest_writes_the_decision_log(market, tmp_path):
    import torch

    from envs.vec_env import VecMarketEnv
    from hierarchy.decision_log import read_decision_log
    from hierarchy.system import HierarchicalSystem, HierarchyConfig

    config = EnvConfig()
    probe = VecMarketEnv(market, config, num_envs=16, seed=0)          # trained on 16 envs
    torch.manual_seed(0)
    system = HierarchicalSystem(probe, HierarchyConfig(meta_period=5))
    path = tmp_path / "decisions.jsonl"
    first = run_system("hierarchy", market, config, system, decision_log=path)
    second = run_system("hierarchy", market, config, system)
    np.testing.assert_array_equal(first.returns, second.returns)          # deterministic
    rows = read_decision_log(path)
    assert len(rows) == len(first.returns)
    row = rows[0]
    assert {"timestamp", "allocation", "risk_appetite", "signals", "target_weights",
            "executed_weights", "messages", "limits_bound"} <= set(row)
    assert row["meta_acted"] and not rows[1]["meta_acted"] and rows[5]["meta_acted"]
    assert set(row["executed_weights"]) == set(market.symbols)


@pytest.mark.parametrize("name", ["buy_and_hold", "trend_following", "oracle"])
def test_replaying_recorded_fills_repeats_the_backtest(market, name):
    config = EnvConfig()
    recorded = run_schedule(name, market, config, baseline_weights(name, market, start=config.warmup_bars))
    frames = recorded.frames(market.symbols)
    schedule, first = replay_schedule(frames["weights"], frames["returns"]["turnover"], market)
    assert first == config.warmup_bars
    assert np.isnan(schedule[: first]).all()
    replayed = run_schedule(name, market, dataclasses.replace(config, warmup_bars=first), schedule)
    np.testing.assert_array_equal(replayed.returns, recorded.returns)
    np.testing.assert_array_equal(replayed.weights, recorded.weights)


def test_replay_names_what_does_not_fit(market):
    config = EnvConfig()
    frames = run_schedule("equal_weight", market, config,
                          baseline_weights("equal_weight", market, start=config.warmup_bars)).frames(market.symbols)
    with pytest.raises(ValueError, match="recorded weights have columns"):
        replay_schedule(frames["weights"].iloc[:, ::-1], frames["returns"]["turnover"], market)
    with pytest.raises(ValueError, match="is not a bar after the first of market"):
        replay_schedule(frames["weights"], frames["returns"]["turnover"], market.slice_time(100, 200))


def test_cost_stress_scales_the_same_trades(market):
    config = EnvConfig()
    schedule = baseline_weights("equal_weight", market, start=config.warmup_bars)
    walks = cost_stress("equal_weight", market, config, schedule)
    assert list(walks) == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(walks[1.0].returns, run_schedule("e", market, config, schedule).returns)
    assert walks[0.0].costs[:, :4].sum() == 0.0
    finals = [walks[f].equity[-1] for f in walks]
    assert finals == sorted(finals, reverse=True)             # each extra unit of costs costs


def test_run_policy_takes_a_schedule_or_a_decide_function(market):
    config = EnvConfig()
    n = market.n_instruments
    held = run_policy("s", market, config, lambda m, start: baseline_weights("buy_and_hold", m, start=start))
    decided = run_policy("d", market, config, lambda m, start: (
        lambda env: np.full((1, n), 1.0 / n) if env.state.bar[0] == start else np.full((1, n), np.nan)))
    np.testing.assert_array_equal(held.returns, decided.returns)


def test_window_returns_walk_each_window_as_its_own_backtest(market):
    config = EnvConfig(warmup_bars=40)
    schedule = baseline_weights("equal_weight", market, start=config.warmup_bars)
    decide = lambda env: schedule[env.state.bar]
    whole = run_schedule("equal_weight", market, config, schedule)
    np.testing.assert_array_equal(window_returns(market, config, decide, 1)[0], whole.returns)
    windows = window_returns(market, config, decide, 3)
    length = (market.n_bars - 1 - config.warmup_bars) // 3
    assert windows.shape == (3, length)
    for k in range(3):                         # window k: a walk that starts flat at its first bar
        start = config.warmup_bars + k * length
        alone = run_schedule("equal_weight", market.slice_time(0, start + length + 1),
                             dataclasses.replace(config, warmup_bars=start), schedule[: start + length + 1])
        np.testing.assert_allclose(windows[k], alone.returns, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="no 400 windows"):
        window_returns(market, config, decide, 400)


def test_a_ruined_walk_says_where_it_ended():
    """A 10x long into a 15 % gap ruins the book at the fill: the walk stops there, and its
    summary, the run's terminal table and every report table say so."""
    from envs.costs import InstrumentCosts
    from envs.market_data import MarketData
    from eval.backtest import run
    from learners.experiment.evaluation import results_table
    from learners.run.folder import EvaluationRecord, TrainingRecord

    closes = np.array([100.0] * 5 + [85.0] * 5)[:, None]
    ohlcv = np.stack([closes, closes, closes, closes, np.full_like(closes, np.nan)], -1)
    zero = {f.name: np.zeros(1) for f in dataclasses.fields(InstrumentCosts)}
    costs = InstrumentCosts(**{**zero, "pip_size": np.full(1, 1e-4), "initial_margin": np.full(1, 0.05),
                               "maintenance_margin": np.full(1, 0.025)})
    import pandas as pd
    market = MarketData(name="gap", timestamps=pd.bdate_range("2024-01-01", periods=10, tz="UTC"),
                        symbols=("SPX500",), domains=("equity",), asset_classes=("equity_index",), ohlcv=ohlcv,
                        costs=costs, macro=np.zeros((10, 1)), macro_names=("short_rate",), has_volume=np.array([False]))
    config = EnvConfig(warmup_bars=0, max_leverage=20.0, drawdown_penalty=0.0, tail_penalty=0.0)
    result = run("levered", market, config, lambda env: np.array([[10.0]]))
    summary = result.summary()
    assert result.ruined and summary["bars"] == len(result.returns) < market.n_bars - 1
    assert summary["ruin_bar"] == len(result.returns) - 1
    calm = run("flat", market, config, lambda env: np.array([[0.0]])).summary()
    assert calm["bars"] == market.n_bars - 1 and np.isnan(calm["ruin_bar"])
    record = EvaluationRecord(
        split="test", market="gap", periods_per_year=252.0, seed=0, ablation="full", budget="smoke",
        symbols=["SPX500"], domains={"equity": ["SPX500"]}, first_bar="", last_bar="", leak_next_return=False,
        policies={"levered": summary, "flat": calm}, pre_cost={}, training=TrainingRecord({}, {}))
    table = results_table(record)
    assert f"levered: RUINED, the walk ended at bar {len(result.returns) - 1}" in table and "flat: RUINED" not in table
    assert "return %/yr" in table and "turnover x/yr" in table
