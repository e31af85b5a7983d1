"""Simulator accounting: the ledger identity under random actions, a hand-computed case to the
cent, controls (a leaked-future policy, zero weights, buy-and-hold), margin calls and ruin; the
synthetic market's tests run on daily and on intraday bars."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.config import EXECUTION_MODES, EnvConfig
from envs.costs import InstrumentCosts
from envs.market_data import MarketData
from envs.state import COMMISSION, FINANCING, IMPACT, LIQUIDATION, SLIPPAGE, SPREAD
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv

CENT = 0.005


def hand_market(opens, closes, volumes, symbols, asset_classes, short_rate_pct=0.0, **costs):
    """A MarketData from explicit (T, N) prices; `costs` override zero costs per field (N,)."""
    opens, closes, volumes = (np.asarray(a, dtype=np.float64) for a in (opens, closes, volumes))
    T, N = closes.shape
    ohlcv = np.stack([opens, np.maximum(opens, closes), np.minimum(opens, closes), closes, volumes], -1)
    fields = {"half_spread_bps": 0.0, "half_spread_pips": 0.0, "pip_size": 1e-4, "commission_bps": 0.0,
              "slippage_vol_coef": 0.0, "impact_coef": 0.0, "financing_spread_bps": 0.0,
              "initial_margin": 0.05, "maintenance_margin": 0.025, **costs}
    return MarketData(
        name="hand", timestamps=pd.bdate_range("2024-01-01", periods=T, tz="UTC"),
        symbols=tuple(symbols), domains=tuple(asset_classes), asset_classes=tuple(asset_classes),
        ohlcv=ohlcv, costs=InstrumentCosts(**{k: np.broadcast_to(np.asarray(v, dtype=np.float64), (N,)).copy()
                                              for k, v in fields.items()}),
        macro=np.full((T, 1), short_rate_pct), macro_names=("short_rate",),
        has_volume=~np.isnan(volumes).all(axis=0))


def walk(**overrides):
    """Evaluation walk from bar 0 without reward penalties."""
    return EnvConfig(**{"initial_equity": 1e6, "episode_length": 0, "warmup_bars": 0,
                        "drawdown_penalty": 0.0, "tail_penalty": 0.0, "volume_halflife": 1.0,
                        "max_leverage": 20.0, **overrides})


@pytest.fixture(scope="module", params=[{"years": 2}, {"years": 0.1, "bar_minutes": 5}], ids=["daily", "5m"])
def market(request):
    """Daily bars, and five-minute bars with sessions (flat, untradable bars outside them)."""
    return generate(SyntheticConfig(seed=7, **request.param))


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), scale=st.floats(0.05, 20.0), execution=st.sampled_from(EXECUTION_MODES))
def test_ledger_identity_holds_for_every_env_over_whole_episodes(market, seed, scale, execution):
    E, N, initial = 16, market.n_instruments, 1e6
    env = VecMarketEnv(market, EnvConfig(execution=execution, episode_length=60, max_leverage=20.0),
                       num_envs=E, seed=seed)
    env.reset()
    rng = np.random.default_rng(seed)
    pnl, costs, equity_before = np.zeros(E), np.zeros(E), np.full(E, initial)
    finished = 0
    for _ in range(130):
        _, _, terminated, truncated, info = env.step(rng.uniform(-scale, scale, (E, N)))
        pnl += info["pnl"]
        costs += info["costs"].sum(axis=1)
        np.testing.assert_allclose(info["equity"], initial + pnl - costs, rtol=1e-9)
        step_return = info["equity"] / equity_before - 1.0
        np.testing.assert_allclose(info["instrument_reward"].sum(axis=1), step_return, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(info["domain_reward"].sum(axis=1), step_return, rtol=1e-9, atol=1e-12)
        done = terminated | truncated
        finished += done.sum()
        pnl[done], costs[done] = 0.0, 0.0
        equity_before = np.where(done, initial, info["equity"])
    assert finished >= E


def test_hand_computed_two_instruments_three_bars_to_the_cent():
    # EURUSD (fx, no volume) and SPX500 (index); short rate 2 % a year, 252 bars a year
    market = hand_market(
        opens=[[1.1000, 100.0], [1.1050, 101.0], [1.1000, 100.0]],
        closes=[[1.1000, 100.0], [1.1100, 102.0], [1.0890, 99.0]],
        volumes=[[np.nan, 1e5], [np.nan, 1e5], [np.nan, 1e5]],
        symbols=("EURUSD", "SPX500"), asset_classes=("fx", "equity_index"), short_rate_pct=2.0,
        half_spread_bps=[0.0, 2.0], half_spread_pips=[1.0, 0.0], commission_bps=[0.5, 1.0],
        slippage_vol_coef=[0.1, 0.1], impact_coef=[0.0, 0.2], financing_spread_bps=[50.0, 100.0],
        initial_margin=[0.05, 0.10], maintenance_margin=[0.025, 0.05])
    env = VecMarketEnv(market, walk(), num_envs=1)
    env.reset(seed=0)

    # bar 0 -> 1: buy 2x EURUSD, sell 1x SPX500 at the opens of bar 1 (no volatility known yet)
    _, _, _, _, first = env.step(np.array([[2.0, -1.0]]))
    spread = 2e6 * (1.0 * 1e-4 / 1.1050) + 1e6 * 2e-4
    commission = 2e6 * 0.5e-4 + 1e6 * 1e-4
    levered = 1.0 - 1e6 / 3e6
    financing = 2e6 * levered * (0.02 + 0.005) / 252 + 1e6 * levered * (0.02 + 0.01) / 252
    pnl = 2e6 * (1.1100 / 1.1050 - 1.0) - 1e6 * (102.0 / 101.0 - 1.0)
    equity = 1e6 + pnl - spread - commission - financing
    assert first["costs"][0, [SPREAD, COMMISSION, FINANCING]] == pytest.approx([spread, commission, financing],
                                                                                abs=CENT)
    assert first["costs"][0, [SLIPPAGE, IMPACT, LIQUIDATION]].tolist() == [0.0, 0.0, 0.0]
    assert first["pnl"][0] == pytest.approx(pnl, abs=CENT)
    assert first["equity"][0] == pytest.approx(equity, abs=CENT)

    # bar 1 -> 2: rebalance to 1x and +0.5x at the opens of bar 2
    eur, spx = 2e6 * 1.1100 / 1.1050, -1e6 * 102.0 / 101.0          # positions at close[1]
    gap = eur * (1.1000 / 1.1100 - 1.0) + spx * (100.0 / 102.0 - 1.0)
    fill_equity = equity + gap
    eur_size = abs(fill_equity - eur * 1.1000 / 1.1100)
    spx_size = abs(0.5 * fill_equity - spx * 100.0 / 102.0)
    vol_eur, vol_spx = abs(math.log(1.1100 / 1.1000)), abs(math.log(102.0 / 100.0))
    adv_spx = (0.5 * 1e5 * 100.0 + 1e5 * 102.0) / 1.5               # EWMA, half-life 1 bar
    spread = eur_size * 1e-4 / 1.1000 + spx_size * 2e-4
    commission = eur_size * 0.5e-4 + spx_size * 1e-4
    slippage = eur_size * 0.1 * vol_eur + spx_size * 0.1 * vol_spx
    impact = spx_size * 0.2 * vol_spx * math.sqrt(spx_size / adv_spx)
    financing = (fill_equity * 0.025 + 0.5 * fill_equity * 0.03) * (1.0 / 3.0) / 252
    pnl = gap + fill_equity * (1.0890 / 1.1000 - 1.0) + 0.5 * fill_equity * (99.0 / 100.0 - 1.0)
    final_equity = equity + pnl - (spread + commission + slippage + impact + financing)
    _, reward, _, truncated, second = env.step(np.array([[1.0, 0.5]]))
    assert second["fill_equity"][0] == pytest.approx(fill_equity, abs=CENT)
    assert second["costs"][0, :5] == pytest.approx([spread, commission, slippage, impact, financing], abs=CENT)
    assert second["equity"][0] == pytest.approx(final_equity, abs=CENT)
    assert second["executed_weights"][0] == pytest.approx([1.0, 0.5], abs=1e-12)
    assert reward[0] == pytest.approx(math.log(final_equity / equity), abs=1e-12)
    assert truncated[0]                                     # the walk ends at the last bar


def test_leaked_next_bar_policy_earns_a_large_sharpe(market):
    """Positive control: a test-only policy that knows the coming session's return, and trades
    only where it beats twice the cost of a unit trade (on five-minute bars most moves do not)."""
    costs = market.costs
    # intraday: volatility and traded volume averaged over days of bars, closed hours included
    # (configs/market/synthetic8_5m.yaml), so that a session's first trade is costed as usual
    days = {} if market.bars_per_year == 252 else {"vol_halflife": 2880.0, "volume_halflife": 2880.0}
    for execution in EXECUTION_MODES:
        env = VecMarketEnv(market, walk(execution=execution, warmup_bars=20, **days), num_envs=1)
        env.reset(seed=0)
        returns, done = [], False
        while not done:
            t = env.state.bar[0]
            s = t + 1
            session = market.close[s] / env.tables.fill_price[s] - 1.0
            unit_cost = ((costs.half_spread_bps + costs.commission_bps) * 1e-4
                         + costs.half_spread_pips * costs.pip_size / env.tables.fill_price[s]
                         + costs.slippage_vol_coef * env.tables.bar_vol[t] * env.params.daily_vol_factor)
            target = np.where(np.abs(session) > 2 * unit_cost, np.sign(session) / market.n_instruments, np.nan)
            _, _, terminated, truncated, info = env.step(target[None])
            returns.append(info["log_return"][0])
            done = terminated[0] or truncated[0]
        sharpe = np.mean(returns) / np.std(returns) * np.sqrt(market.bars_per_year)
        assert sharpe > 5.0, (execution, sharpe)


def test_zero_weights_earn_exactly_nothing(market):
    env = VecMarketEnv(market, EnvConfig(episode_length=100, drawdown_penalty=1.0, tail_penalty=1.0,
                                         turnover_penalty=1.0), num_envs=8, seed=3)
    env.reset()
    for _ in range(150):
        _, reward, _, _, info = env.step(np.zeros((8, market.n_instruments)))
        assert (info["equity"] == 1e6).all() and (info["costs"] == 0.0).all() and (info["pnl"] == 0.0).all()
        assert (reward == 0.0).all() and (info["instrument_reward"] == 0.0).all()


def test_buy_and_hold_is_the_instruments_return_minus_one_entry_cost(market):
    """Under `close` execution, hold the drifted weight after one entry; no financing."""
    quiet = hand_market(market.field("open"), market.close, market.field("volume"),
                        market.symbols, market.asset_classes, short_rate_pct=0.0,
                        half_spread_bps=market.costs.half_spread_bps,
                        half_spread_pips=market.costs.half_spread_pips, pip_size=market.costs.pip_size,
                        commission_bps=market.costs.commission_bps,
                        slippage_vol_coef=market.costs.slippage_vol_coef,
                        impact_coef=market.costs.impact_coef)
    env = VecMarketEnv(quiet, walk(execution="close", warmup_bars=20), num_envs=1)
    env.reset(seed=0)
    entry = np.zeros((1, quiet.n_instruments))
    entry[0, 5] = 1.0                                       # SPX500
    _, _, _, truncated, info = env.step(entry)
    entry_cost = info["costs"][0].sum()
    while not truncated[0]:
        _, _, _, truncated, info = env.step(env.weights)
    growth = quiet.close[-1, 5] / quiet.close[20, 5]
    assert info["equity"][0] == pytest.approx(1e6 * growth - entry_cost, abs=CENT)
    assert info["ledger_costs"][0].sum() == pytest.approx(entry_cost, abs=CENT)


def margin_market(second_open: float, second_close: float) -> MarketData:
    """One index instrument at 100 that then opens and closes at the given prices, and stays."""
    return hand_market(opens=[[100.0], [100.0], [second_open], [second_close]],
                       closes=[[100.0], [100.0], [second_close], [second_close]], volumes=[[np.nan]] * 4,
                       symbols=("SPX500",), asset_classes=("equity_index",), half_spread_bps=1.0)


def test_margin_call_liquidates_down_to_the_initial_requirement():
    env = VecMarketEnv(margin_market(100.0, 92.0), walk(liquidation_fee_bps=10.0), num_envs=1)
    env.reset(seed=0)
    env.step(np.array([[10.0]]))                           # 10x long at 100: 1000 of spread
    _, _, terminated, _, info = env.step(np.array([[10.0]]))
    rebalance_cost = (10e6 - 10 * 999_000.0) * 1e-4        # back to 10x of 999k at the open
    position = 10 * 999_000.0 * 0.92                       # then the session loses 8 %
    equity = 999_000.0 - rebalance_cost - 10 * 999_000.0 * 0.08
    assert 0.0 < equity < 0.025 * position                 # below maintenance: a margin call
    keep = equity / (0.05 * position)                      # initial requirement == equity
    forced = (1.0 - keep) * position * (1e-4 + 10e-4)      # spread plus the liquidation fee
    assert info["liquidated"][0] and not terminated[0]
    assert info["costs"][0, LIQUIDATION] == pytest.approx(forced, abs=CENT)
    assert info["equity"][0] == pytest.approx(equity - forced, abs=CENT)
    assert env.positions[0, 0] == pytest.approx(keep * position, abs=CENT)


def test_ruin_at_the_open_closes_everything_and_ends_the_episode():
    env = VecMarketEnv(margin_market(85.0, 85.0), walk(), num_envs=1)
    env.reset(seed=0)
    env.step(np.array([[10.0]]))
    _, reward, terminated, _, info = env.step(np.array([[10.0]]))
    position = 10e6 * 0.85                                 # 10x of 1e6, gapped down 15 %
    gap = -10e6 * 0.15
    assert info["fill_equity"][0] == pytest.approx(999_000.0 + gap, abs=CENT) and info["fill_equity"][0] < 0
    assert terminated[0] and info["liquidated"][0]
    assert info["costs"][0, LIQUIDATION] == pytest.approx(position * 1e-4, abs=CENT)
    assert info["equity"][0] == pytest.approx(999_000.0 + gap - position * 1e-4, abs=CENT)
    assert reward[0] == -10.0                               # the configured ruin floor
    assert info["ledger_pnl"][0] - info["ledger_costs"][0].sum() == pytest.approx(info["equity"][0] - 1e6, abs=CENT)
    assert env.equity[0] == 1e6 and info["_final_obs"][0]  # autoreset started a new episode
