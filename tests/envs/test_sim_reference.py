"""The Numba kernels and the plain-numpy reference step compute the same numbers, including
margin calls, ruin, stale (forward-filled) bars, closes-only instruments and held (NaN)
targets; and what those special bars do to a trade."""

import dataclasses

import numpy as np
import pytest

from envs import kernels, reference
from envs.config import EXECUTION_MODES, EnvConfig
from envs.market_data import CLOSE, FORWARD_FILLED, HIGH, LOW, OPEN
from envs.state import COST_KINDS, EnvState, StepOutputs
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv

STALE_INSTRUMENT, STALE_BARS = 5, np.arange(40, 400, 7)
CLOSES_ONLY = 3
CRASHING, CRASH_BAR = 4, 250                                    # WTIUSD opens 40 % lower


def irregular_market():
    """synthetic8 with SPX500 forward-filled on some bars, XAUUSD known by closes only, and a
    40 % overnight crash of WTIUSD (ruin for the leveraged)."""
    market = generate(SyntheticConfig(years=2, seed=4))
    ohlcv, quality = market.ohlcv.copy(), market.quality.copy()
    ohlcv[CRASH_BAR:, CRASHING, :4] *= 0.6
    for t in STALE_BARS:
        ohlcv[t, STALE_INSTRUMENT, :4] = ohlcv[t - 1, STALE_INSTRUMENT, CLOSE]
        ohlcv[t, STALE_INSTRUMENT, 4] = 0.0
        quality[t, STALE_INSTRUMENT] = FORWARD_FILLED
    ohlcv[:, CLOSES_ONLY, [OPEN, HIGH, LOW]] = np.nan
    has_ohlc = np.ones(market.n_instruments, dtype=bool)
    has_ohlc[CLOSES_ONLY] = False
    return dataclasses.replace(market, ohlcv=ohlcv, quality=quality, has_ohlc=has_ohlc)


@pytest.fixture(scope="module")
def market():
    return irregular_market()


def copied(arrays):
    return type(arrays)(*(a.copy() for a in arrays))


@pytest.mark.parametrize("execution", EXECUTION_MODES)
def test_numba_and_numpy_steps_agree(market, execution):
    E, N = 64, market.n_instruments
    env = VecMarketEnv(market, EnvConfig(execution=execution, episode_length=0, max_leverage=40.0,
                                         liquidation_fee_bps=5.0), num_envs=E, seed=0)
    env.reset(seed=0)
    state: EnvState = copied(env.state)
    out: StepOutputs = copied(env.outputs)
    observation = env.observation.copy()
    rng = np.random.default_rng(5)
    scale = np.geomspace(0.1, 40.0, E)[:, None]                 # from calm to ruinous leverage
    liquidated = terminated = 0
    for _ in range(300):
        if env.outputs.terminated.any():
            break
        targets = scale * rng.uniform(-1.0, 1.0, (E, N))
        targets[rng.random((E, N)) < 0.2] = np.nan               # hold these positions
        kernels.step(targets, env.tables, env.costs, env.params, env.domain_index, env.state,
                     env.outputs, env.observation)
        reference.step(targets, env.tables, env.costs, env.params, env.domain_index, state, out,
                       observation)
        for name, fast, plain in zip(StepOutputs._fields, env.outputs, out):
            money = name in ("pnl", "costs", "equity", "fill_equity")
            np.testing.assert_allclose(fast, plain, rtol=1e-9, atol=1e-6 if money else 1e-10, err_msg=name)
        for name, fast, plain in zip(EnvState._fields, env.state, state):
            np.testing.assert_allclose(fast, plain, rtol=1e-9, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(env.observation, observation, rtol=1e-5, atol=1e-6)
        liquidated += env.outputs.liquidated.sum()
        terminated += env.outputs.terminated.sum()
    assert liquidated > 0 and terminated > 0


STAGES = ("_mark_to_fill", "_fill", "_mark_to_close", "_book")


def run_stage(module, name, targets, env, state, out):
    """Stage `name` of `module` (`kernels` or `reference`, which share the stages' signatures)."""
    args = {"_mark_to_fill": (env.tables, state, out),
            "_fill": (targets, env.tables, env.costs, env.params, state, out),
            "_mark_to_close": (env.tables, env.costs, env.params, state, out),
            "_book": (env.params, env.domain_index, state, out)}[name]
    getattr(module, name)(*args)


def test_each_stage_agrees_with_the_kernel_stage_of_its_name(market):
    """Every stage of the numpy step, run on the state the kernel's stages leave before it, does
    what the kernel's stage of the same name does, intermediate outputs included (e.g. the money
    in `instrument_reward` before `_book` divides it by equity), so a disagreement is pinned to
    one stage."""
    E, N = 64, market.n_instruments
    env = VecMarketEnv(market, EnvConfig(episode_length=0, max_leverage=40.0, liquidation_fee_bps=5.0),
                       num_envs=E, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(6)
    scale = np.geomspace(0.1, 40.0, E)[:, None]
    liquidated = terminated = 0
    for _ in range(300):
        if env.outputs.terminated.any():
            break
        targets = scale * rng.uniform(-1.0, 1.0, (E, N))
        targets[rng.random((E, N)) < 0.2] = np.nan
        for stage in STAGES:
            state: EnvState = copied(env.state)
            out: StepOutputs = copied(env.outputs)
            run_stage(kernels, stage, targets, env, env.state, env.outputs)
            run_stage(reference, stage, targets, env, state, out)
            for name, fast, plain in zip(StepOutputs._fields, env.outputs, out):
                money = name in ("pnl", "costs", "equity", "fill_equity", "instrument_reward")
                np.testing.assert_allclose(fast, plain, rtol=1e-9, atol=1e-6 if money else 1e-10,
                                           err_msg=f"{stage}: {name}")
            for name, fast, plain in zip(EnvState._fields, env.state, state):
                np.testing.assert_allclose(fast, plain, rtol=1e-9, atol=1e-6, err_msg=f"{stage}: {name}")
        observation = env.observation.copy()
        kernels.write_observations(np.arange(E), env.tables, env.params, env.domain_index, env.state,
                                   env.observation)
        reference.write_observations(env.tables, env.params, env.domain_index, env.state, observation)
        np.testing.assert_allclose(env.observation, observation, rtol=1e-5, atol=1e-6)
        liquidated += env.outputs.liquidated.sum()
        terminated += env.outputs.terminated.sum()
    assert liquidated > 0 and terminated > 0

def test_no_trade_on_a_forward_filled_bar(market):
    """A decision whose fill bar is stale keeps the position as it is, drifted."""
    t = int(STALE_BARS[3]) - 1                                  # next_open fills at the stale bar
    env = VecMarketEnv(market, EnvConfig(episode_length=0, warmup_bars=t - 1), num_envs=1)
    env.reset(seed=0)
    env.step(np.full((1, market.n_instruments), 0.1))
    held = env.positions[0, STALE_INSTRUMENT]
    _, _, _, _, info = env.step(np.full((1, market.n_instruments), -0.1))
    assert env.positions[0, STALE_INSTRUMENT] == held           # a stale bar does not move either
    assert info["executed_weights"][0, STALE_INSTRUMENT] == pytest.approx(held / info["fill_equity"][0])
    others = np.delete(info["executed_weights"][0], STALE_INSTRUMENT)
    np.testing.assert_allclose(others, -0.1, rtol=1e-12)


def test_closes_only_instrument_fills_at_the_previous_close(market):
    env = VecMarketEnv(market, EnvConfig(), num_envs=1)
    np.testing.assert_array_equal(env.tables.fill_price[1:, CLOSES_ONLY], market.close[:-1, CLOSES_ONLY])
    np.testing.assert_array_equal(env.tables.fill_price[1:, 0], market.field("open")[1:, 0])


def test_nan_targets_hold_positions_under_next_open():
    """Buy-and-hold at the open: one entry, then NaN targets. Nothing trades again, so the only
    later cost is financing (paying the entry cost out of a fully invested book levers it a
    little), and equity is the entry's notional grown by each price, less all costs."""
    market = generate(SyntheticConfig(years=1, seed=8))
    config = EnvConfig(episode_length=0, execution="next_open")
    env = VecMarketEnv(market, config, num_envs=1, seed=0)
    env.reset(seed=0)
    N = market.n_instruments
    _, _, _, _, info = env.step(np.full((1, N), 1.0 / N))
    entry_cost = info["costs"].sum()
    entry_bar = env.state.bar[0]
    hold = np.full((1, N), np.nan)
    turnover = 0.0
    while True:
        _, _, terminated, truncated, info = env.step(hold)
        turnover += info["turnover"][0]
        if truncated[0] or terminated[0]:
            break
    costs = info["ledger_costs"][0]
    financing = costs[COST_KINDS.index("financing")]
    assert turnover == 0.0 and costs.sum() - financing == pytest.approx(entry_cost, rel=1e-12)
    notional = np.full(N, config.initial_equity / N)                    # sized at the first fill
    grown = (notional * market.close[-1] / market.field("open")[entry_bar]).sum()
    assert info["equity"][0] == pytest.approx(grown - costs.sum(), rel=1e-9)
