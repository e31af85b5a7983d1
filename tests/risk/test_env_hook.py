"""The risk overlay inside the simulator: every limit holds on the executed book, holds stay
holds, and the kill switch flattens a losing env."""

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from risk.env_hook import risk_env
from risk.limits import RiskLimits


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=1))


def test_executed_books_respect_the_limits(market):
    limits = RiskLimits(max_gross_leverage=1.5, max_var=0.01)
    env = risk_env(market, EnvConfig(episode_length=100), limits, num_envs=8, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        _, _, _, _, info = env.step(rng.uniform(-2, 2, size=(8, market.n_instruments)))
        gross = np.abs(info["executed_weights"]).sum(axis=1)
        assert (gross <= 1.5 * (1 + 1e-6)).all()
        assert (env.overlay.report.executed_utilisation <= 1 + 1e-6).all()
    assert env.overlay.report.bound.any()
    assert set(env.overlay.last_report) == {"bound", "halted", "target_utilisation"}


def test_holds_stay_holds_when_within_limits(market):
    env = risk_env(market, EnvConfig(episode_length=0), RiskLimits(), num_envs=1, seed=0)
    env.reset(seed=0)
    env.step(np.full((1, market.n_instruments), 0.05))
    _, _, _, _, info = env.step(np.full((1, market.n_instruments), np.nan))
    assert info["turnover"][0] == 0.0


def test_kill_switch_flattens_after_a_drawdown(market):
    limits = RiskLimits(max_drawdown=0.01, kill_switch_cooldown=5, max_var=1.0,
                        max_correlation_exposure=1.0, max_class_share=1.0, max_margin_usage=1.0)
    env = risk_env(market, EnvConfig(episode_length=0, max_leverage=2.0), limits, num_envs=1, seed=0)
    env.reset(seed=0)
    long_equity = np.zeros((1, market.n_instruments))
    long_equity[0, 5:] = 0.6
    halted_bars = 0
    for _ in range(300):
        env.step(long_equity)
        halted_bars += int(env.overlay.report.halted[0])
    assert env.overlay.tracker.triggers and halted_bars > 0


def test_margin_rates_come_from_the_market(market):
    from risk.env_hook import RiskHook, market_margin_rates

    rates = market_margin_rates(market)
    assert rates == {"fx": 0.0333, "commodity": 0.10, "equity_index": 0.05}
    custom = RiskLimits(margin_rates={"fx": 0.5, "commodity": 0.5, "equity_index": 0.5, "equity": 0.5})
    hook = RiskHook(custom, market, num_envs=2)          # the market's rates win in the simulator
    np.testing.assert_allclose(hook.overlay.kernel_limits.margin_rates,
                               market.costs.initial_margin)
