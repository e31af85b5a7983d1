"""Rollouts of the hierarchy: what the specialists' PPO buffers and the meta-controller's
semi-MDP transitions hold, how episode ends bootstrap, and determinism under a seed."""

import numpy as np
import pytest
import torch

from buffers.replay import ReplayBuffer
from buffers.rollout import RolloutBuffer
from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.agents import FlatAgent
from hierarchy.networks import FlatPolicy
from hierarchy.rollouts import collect_flat_rollout, collect_rollout
from hierarchy.system import HierarchicalSystem, HierarchyConfig

E, T, PERIOD, SCALE = 3, 20, 5, 100.0


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=3))


def make(market, episode_length=100):
    env = VecMarketEnv(market, EnvConfig(episode_length=episode_length), num_envs=E, seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig(meta_period=PERIOD))
    return env, system, [RolloutBuffer(T, E) for _ in system.domain_names]


def test_specialist_buffers_hold_scaled_domain_rewards_that_add_up_to_the_pnl(market):
    env, system, buffers = make(market)
    system.fixed_meta = True
    stats = collect_rollout(env, system, T, seed=1, reward_scale=SCALE, specialist_buffers=buffers)
    domain_rewards = torch.stack([b.rewards for b in buffers], dim=-1) / SCALE       # (T, E, D)
    # the domains' rewards are the instruments' PnL net of costs over equity: they add up to
    # the portfolio's simple return, i.e. exp(log return) - 1
    simple = np.expm1(np.stack(stats.log_returns))
    np.testing.assert_allclose(domain_rewards.sum(-1).numpy(), simple, rtol=1e-4, atol=1e-7)
    assert all(b.advantages is not None and b.advantages.shape == (T, E) for b in buffers)
    assert np.allclose(np.stack(stats.allocation), 1 / 3) and np.allclose(np.stack(stats.appetite), 1)


def test_meta_transitions_sum_the_rewards_of_the_bars_they_held(market):
    env, system, _ = make(market)
    replay = ReplayBuffer(1000)
    stats = collect_rollout(env, system, T, seed=2, reward_scale=SCALE, meta_replay=replay)
    assert stats.meta_transitions == len(replay) == E * T // PERIOD
    rewards = np.stack(stats.rewards) * SCALE                                       # (T, E)
    held = rewards.reshape(T // PERIOD, PERIOD, E).sum(axis=1)                      # (decisions, E)
    # transitions are added decision by decision, env by env
    np.testing.assert_allclose(replay.storage.rewards[: len(replay)].numpy(), held.reshape(-1), rtol=1e-5)
    assert (replay.storage.terminated[: len(replay)] == 0).all()
    # an option's next observation is the meta observation where the next one began
    obs, next_obs = replay.storage.obs[: len(replay)], replay.storage.next_obs[: len(replay)]
    torch.testing.assert_close(next_obs[: -E], obs[E:])
    allocation = replay.storage.actions[: len(replay), :3]
    torch.testing.assert_close(allocation.sum(-1), torch.ones(len(replay)))


def test_truncation_bootstraps_from_the_final_observation(market):
    env, system, buffers = make(market, episode_length=7)
    system.fixed_meta = True
    stats = collect_rollout(env, system, T, seed=3, reward_scale=SCALE, specialist_buffers=buffers)
    assert sorted(stats.episode_lengths) == [6] * E + [7] * (2 * E)     # the rollout's end closes the third
    truncated = buffers[0].truncated
    assert truncated[6].all() and truncated[13].all() and truncated.sum() == 2 * E
    for buffer in buffers:
        assert (buffer.final_values[truncated] != 0).all() and (buffer.final_values[~truncated] == 0).all()
        # the step after a truncation starts a new episode: its value is not the final one
        assert not torch.allclose(buffer.final_values[6], buffer.values[7])


def test_same_seed_same_rollout(market):
    first, second = [], []
    for out in (first, second):
        env, system, buffers = make(market)
        torch.manual_seed(5)
        collect_rollout(env, system, T, seed=4, reward_scale=SCALE, specialist_buffers=buffers,
                        meta_replay=ReplayBuffer(100))
        out += [buffers[0].actions.clone(), buffers[2].rewards.clone()]
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_flat_rollout_weights_within_leverage(market):
    env = VecMarketEnv(market, EnvConfig(episode_length=100), num_envs=E, seed=0)
    torch.manual_seed(0)
    agent = FlatAgent(FlatPolicy(env.single_observation_space.shape[0], 8, hidden=16))
    buffer = RolloutBuffer(T, E)
    stats = collect_flat_rollout(env, agent, T, seed=0, reward_scale=SCALE, max_leverage=1.5, buffer=buffer)
    assert buffer.actions.shape == (T, E, 8) and buffer.advantages.shape == (T, E)
    np.testing.assert_allclose(buffer.rewards.numpy(), np.stack(stats.rewards) * SCALE, rtol=1e-5)
