"""Offline transitions from behaviour policies: shapes, consistency with the live views, and
the handling of episode ends."""

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.offline import SIGNAL_CLIP, collect_behaviour_transitions
from hierarchy.system import HierarchicalSystem, HierarchyConfig


@pytest.fixture(scope="module")
def collected():
    market = generate(SyntheticConfig(years=1, seed=5))
    env = VecMarketEnv(market, EnvConfig(episode_length=30), num_envs=8, seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig())
    return env, system, collect_behaviour_transitions(env, system, steps=70, rng=np.random.default_rng(0))


def test_one_dataset_per_domain_with_consistent_shapes(collected):
    env, system, data = collected
    assert list(data) == list(system.domain_names)
    forex = data["forex"]
    M = len(forex.reward)
    truncations = 8 * (70 // 30)                     # every env truncates twice in 70 bars
    assert M == 8 * 70 - truncations
    assert forex.latent_action.shape == (M, 3) and forex.instrument_obs.shape[:2] == (M, 3)
    assert forex.next_domain_obs.shape == forex.domain_obs.shape
    assert np.isfinite(forex.latent_action).all() and np.abs(np.tanh(forex.latent_action)).max() <= SIGNAL_CLIP + 1e-6
    assert set(np.unique(forex.behaviour)) == {0, 1, 2, 3}


def test_buy_and_hold_rows_are_long(collected):
    _, _, data = collected
    equity = data["equity"]
    assert np.allclose(np.tanh(equity.latent_action[equity.behaviour == 2]), SIGNAL_CLIP, atol=1e-6)


def test_next_observation_is_the_following_bars_observation():
    market = generate(SyntheticConfig(years=1, seed=6))
    E, steps = 4, 12
    env = VecMarketEnv(market, EnvConfig(episode_length=100), num_envs=E, seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig())
    data = collect_behaviour_transitions(env, system, steps=steps, rng=np.random.default_rng(1))
    for transitions in data.values():
        assert len(transitions.reward) == E * steps                        # no episode ended
        now = transitions.domain_obs.reshape(steps, E, -1)
        following = transitions.next_domain_obs.reshape(steps, E, -1)
        np.testing.assert_array_equal(following[:-1], now[1:])
        np.testing.assert_array_equal(transitions.next_instrument_obs.reshape(steps, E, -1)[:-1],
                                      transitions.instrument_obs.reshape(steps, E, -1)[1:])
