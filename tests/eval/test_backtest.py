"""Backtests through the simulator: the accounting closes, holding is exact, costs scale."""

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from eval.backtest import run_schedule, run_system, scale_costs
from eval.baselines import baseline_weights


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
    result.write(tmp_path, market.symbols)
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
