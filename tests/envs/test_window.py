"""The rolling window view (env.window = W): each env's last W bars of instrument features,
oldest first, through autoresets and before the market's first bar; a view, not a copy; no
look-ahead; and the rest of the simulator unchanged by it."""

import numpy as np
import pytest

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from tests.envs.test_sim_lookahead import perturbed_after

W = 16


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=1, seed=4))


def expected_window(features: np.ndarray, bar: int) -> np.ndarray:
    """(W, N, F) rows bar - W + 1 .. bar of `features`, zero before row 0."""
    rows = np.zeros((W, *features.shape[1:]), dtype=features.dtype)
    first = bar - W + 1
    rows[max(-first, 0):] = features[max(first, 0): bar + 1]
    return rows


def test_window_holds_the_last_bars_through_autoresets(market):
    env = VecMarketEnv(market, EnvConfig(window=W, episode_length=7, warmup_bars=5), num_envs=6, seed=0)
    env.reset(seed=1)
    features = env.tables.instrument_features
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(40):
        window = env.window_observation()
        assert window.shape == (6, W, market.n_instruments, features.shape[2])
        assert np.shares_memory(window, env._window.ring)                    # a view
        for e in range(6):
            np.testing.assert_array_equal(window[e], expected_window(features, env.state.bar[e]))
        np.testing.assert_array_equal(window[:, -1], env.instrument_observation()[:, :, :features.shape[2]])
        bars_before = env.state.bar.copy()
        _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, (6, market.n_instruments)))
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            finished += done.size
            for k, e in enumerate(done):
                np.testing.assert_array_equal(info["final_window"][k], expected_window(features, bars_before[e] + 1))
    assert finished >= 6
    members = env.domain_members[2]
    np.testing.assert_array_equal(env.specialist_window(2), env.window_observation()[:, :, members])


def test_rows_before_the_first_bar_are_zero(market):
    env = VecMarketEnv(market, EnvConfig(window=W, episode_length=0, warmup_bars=3), num_envs=2)
    env.reset(seed=0)
    window = env.window_observation()
    assert (window[:, : W - 4] == 0).all()
    np.testing.assert_array_equal(window[0, W - 4:], env.tables.instrument_features[:4])


def test_window_sees_nothing_after_t(market):
    cut, warmup = 120, 20

    def windows(m):
        env = VecMarketEnv(m, EnvConfig(window=W, episode_length=0, warmup_bars=warmup), num_envs=3, seed=0)
        env.reset(seed=0)
        rng = np.random.default_rng(1)
        out = [env.window_observation().copy()]
        for _ in range(cut - warmup + 3):
            env.step(rng.uniform(-2, 2, (3, m.n_instruments)))
            out.append(env.window_observation().copy())
        return out

    base, moved = windows(market), windows(perturbed_after(market, cut, seed=3))
    for k in range(cut - warmup + 1):                                           # bars warmup .. cut
        np.testing.assert_array_equal(base[k], moved[k], err_msg=f"window at bar {warmup + k}")
    assert not np.array_equal(base[cut - warmup + 1], moved[cut - warmup + 1])    # the control


def test_the_window_changes_nothing_else(market):
    def rollout(window):
        env = VecMarketEnv(market, EnvConfig(window=window, episode_length=30), num_envs=4, seed=0)
        observation, _ = env.reset(seed=0)
        rng = np.random.default_rng(2)
        out = [observation]
        for _ in range(70):
            observation, reward, _, _, _ = env.step(rng.uniform(-1, 1, (4, market.n_instruments)))
            out += [observation, reward]
        return out

    for a, b in zip(rollout(0), rollout(W)):
        np.testing.assert_array_equal(a, b)


def test_window_off_and_bad_settings_say_so(market):
    env = VecMarketEnv(market, EnvConfig(episode_length=50), num_envs=1)
    with pytest.raises(RuntimeError, match="set env.window"):
        env.window_observation()
    with pytest.raises(ValueError, match=r"env.window=-1 must be >= 0"):
        EnvConfig(window=-1).check()
