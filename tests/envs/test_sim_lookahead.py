"""No look-ahead: perturbing every price (and volume, macro, sentiment) after bar t leaves every
observation and reward up to t unchanged, under both execution modes, on daily and intraday bars."""

import dataclasses

import numpy as np
import pytest

from envs.config import EXECUTION_MODES, EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv

CUT = 120          # last bar left untouched
WARMUP = 20


def perturbed_after(market, cut: int, seed: int):
    """`market` with every bar after `cut` scaled by random factors (bars stay consistent)."""
    rng = np.random.default_rng(seed)
    later = market.n_bars - cut - 1
    ohlcv = market.ohlcv.copy()
    ohlcv[cut + 1:, :, :4] *= np.exp(0.05 * rng.standard_normal((later, market.n_instruments)))[..., None]
    ohlcv[cut + 1:, :, 4] *= np.exp(rng.standard_normal((later, market.n_instruments)))
    macro, sentiment = market.macro.copy(), market.sentiment.copy()
    macro[cut + 1:] *= 1.5
    sentiment[cut + 1:] = rng.standard_normal((later, market.n_instruments))
    return dataclasses.replace(market, ohlcv=ohlcv, macro=macro, sentiment=sentiment)


def rollout(market, execution: str, meta_correlation: str, steps: int):
    config = EnvConfig(execution=execution, episode_length=0, warmup_bars=WARMUP,
                       meta_correlation=meta_correlation, max_leverage=10.0)
    env = VecMarketEnv(market, config, num_envs=4, seed=0)
    observation, _ = env.reset(seed=0)
    rng = np.random.default_rng(1)
    observations, rewards, infos = [observation], [], []
    for _ in range(steps):
        observation, reward, _, _, info = env.step(rng.uniform(-3.0, 3.0, (4, market.n_instruments)))
        observations.append(observation)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos


@pytest.mark.parametrize("execution", EXECUTION_MODES)
@pytest.mark.parametrize("meta_correlation", ["instruments", "domains"])
@pytest.mark.parametrize("bars", [{"years": 1}, {"years": 0.02, "bar_minutes": 5}], ids=["daily", "5m"])
def test_nothing_after_t_reaches_observations_or_rewards_up_to_t(execution, meta_correlation, bars):
    market = generate(SyntheticConfig(seed=2, **bars))
    steps = CUT - WARMUP + 5
    base = rollout(market, execution, meta_correlation, steps)
    moved = rollout(perturbed_after(market, CUT, seed=9), execution, meta_correlation, steps)
    known = CUT - WARMUP             # steps whose outcome bar is <= CUT; observations 0..known
    for k in range(known + 1):
        np.testing.assert_array_equal(base[0][k], moved[0][k], err_msg=f"observation at bar {WARMUP + k}")
    for k in range(known):
        np.testing.assert_array_equal(base[1][k], moved[1][k], err_msg=f"reward of step {k}")
        for key in ("equity", "costs", "instrument_reward", "domain_reward", "executed_weights"):
            np.testing.assert_array_equal(base[2][k][key], moved[2][k][key], err_msg=f"{key} of step {k}")
    # the control: the first step that ends after the cut does see the change
    assert not np.array_equal(base[1][known], moved[1][known])
