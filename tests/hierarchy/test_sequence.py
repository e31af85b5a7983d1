"""The sequence specialists (hierarchy.sequence): causality of the attention mask and of the
recurrent state (perturbing bars after t changes nothing at or before t), the tactical head's
horizon, the recurrent state's reset at episode starts, and recurrent PPO: the hidden states
stored with each step reproduce the acting-time log-probs exactly at the first epoch."""

import numpy as np
import pytest
import torch

from buffers.rollout import RolloutBuffer
from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.agents import SpecialistPolicy
from hierarchy.networks import SPECIALIST_TYPES, build_specialists
from hierarchy.rollouts import collect_rollout
from hierarchy.sequence import TACTICAL_BARS
from hierarchy.system import HierarchicalSystem, HierarchyConfig

SYMBOLS = ("A", "B")
W, F_W, F_D, F_I, H = 8, 3, 10, 4, 16


def specialist(name: str, window: int = W):
    torch.manual_seed(0)
    return build_specialists({"d": SYMBOLS}, {}, {"d": F_D}, F_I, H, name, (window, F_W))["d"]


def windows_of(table: torch.Tensor, window: int) -> torch.Tensor:
    """(T, W, n, F) the window at every bar of a (T, n, F) table, zeros before its first bar."""
    padded = torch.cat([torch.zeros(window - 1, *table.shape[1:]), table])
    return torch.stack([padded[t: t + window] for t in range(table.shape[0])])


def test_the_types_are_registered_and_a_window_type_needs_the_window():
    assert {"mlp", "transformer", "lstm_cnn", "tactical"} <= set(SPECIALIST_TYPES)
    with pytest.raises(ValueError, match="hierarchy.specialist_type='transformer' reads the bars' window: "
                                         "set env.window"):
        specialist("transformer", window=0)
    with pytest.raises(ValueError, match=f"env.window=2: the tactical specialist reads the last {TACTICAL_BARS}"):
        specialist("tactical", window=2)


def test_the_attention_mask_keeps_each_bar_from_later_bars():
    net = specialist("transformer")
    window = torch.randn(5, W, len(SYMBOLS), F_W)
    for j in range(W - 1):
        later = window.clone()
        later[:, j + 1:] += torch.randn_like(later[:, j + 1:])
        before, after = net.bars(window), net.bars(later)
        assert torch.equal(before[:, : j + 1], after[:, : j + 1])
        assert not torch.allclose(before[:, j + 1:], after[:, j + 1:])


@pytest.mark.parametrize("name", ["transformer", "lstm_cnn", "tactical"])
def test_perturbing_bars_after_t_changes_nothing_at_or_before_t(name):
    """A walk through a table, one bar at a time (the recurrent state carried): the means and
    states up to t are the same when every row after t is replaced."""
    net = specialist(name)
    T, t = 20, 11
    table = torch.randn(T, len(SYMBOLS), F_W)
    changed = table.clone()
    changed[t + 1:] = torch.randn_like(changed[t + 1:]) * 5
    domain_obs, instrument_obs = torch.randn(T, 1, F_D), torch.randn(T, 1, len(SYMBOLS), F_I)
    walks = []
    for rows in (table, changed):
        state, means, states = torch.zeros(1, net.state_size), [], []
        for bar, window in enumerate(windows_of(rows, W)):
            features, next_state = net.encode(domain_obs[bar], window[None], state)
            means.append(net.head_means(features, instrument_obs[bar], torch.ones(1), torch.ones(1))[0])
            if next_state is not None:
                state = next_state
            states.append(state)
        walks.append((torch.stack(means), torch.stack(states)))
    (means, states), (changed_means, changed_states) = walks
    assert torch.equal(means[: t + 1], changed_means[: t + 1]) and torch.equal(states[: t + 1], changed_states[: t + 1])
    assert not torch.allclose(means[t + 1:], changed_means[t + 1:])


def test_the_tactical_head_reads_the_last_bars_only():
    net = specialist("tactical")
    window = torch.randn(3, W, len(SYMBOLS), F_W)
    older = window.clone()
    older[:, : W - TACTICAL_BARS] = 0.0
    torch.testing.assert_close(net.summary(window, None)[0], net.summary(older, None)[0], rtol=0, atol=0)


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=3))


def lstm_system(market, num_envs: int, episode_length: int):
    env = VecMarketEnv(market, EnvConfig(episode_length=episode_length, window=6), num_envs=num_envs, seed=0)
    torch.manual_seed(0)
    return env, HierarchicalSystem(env, HierarchyConfig(specialist_type="lstm_cnn", specialists={"forex": "tactical"}))


def test_the_recurrent_state_is_carried_and_zeroed_at_episode_starts(market):
    env, system = lstm_system(market, num_envs=3, episode_length=4)
    system.fixed_meta = True
    env.reset(seed=0)
    system.bind(env.num_envs)
    forex, equity = system.domain_names.index("forex"), system.domain_names.index("equity")
    assert system.states[forex].shape == (3, 0) and system.states[equity].shape == (3, 2 * 64)
    held = []
    for _ in range(4):
        decision = system.decide(env)
        held.append(decision.specialists[equity].sequence["state"])
        assert "state" not in decision.specialists[forex].sequence
        _, _, terminated, truncated, _ = env.step(decision.target_weights)
        done = terminated | truncated
        system.restart(np.flatnonzero(done))
    assert torch.equal(held[0], torch.zeros_like(held[0])) and held[1].abs().sum() > 0   # carried
    assert done.all() and torch.equal(system.states[equity], torch.zeros(3, 128))      # zeroed for the next episode


def test_stored_states_reproduce_the_acting_log_probs_at_the_first_epoch(market):
    steps, episode_length = 12, 5
    env, system = lstm_system(market, num_envs=4, episode_length=episode_length)
    system.fixed_meta = True
    buffers = [RolloutBuffer(steps, env.num_envs) for _ in system.domain_names]
    collect_rollout(env, system, steps, seed=1, reward_scale=100.0, specialist_buffers=buffers)
    equity = system.domain_names.index("equity")
    policy, buffer = SpecialistPolicy(system.specialist(equity)), buffers[equity]
    with torch.no_grad():
        for t in range(steps):   # each step as acted: the same rows, the same batch
            log_prob, _, _ = policy.evaluate({k: v[t] for k, v in buffer.obs.items()}, buffer.actions[t])
            assert torch.equal(log_prob, buffer.log_probs[t])
        batch = buffer.flatten()
        shuffled = torch.randperm(len(batch))
        minibatch = batch.index(shuffled)
        log_prob, _, _ = policy.evaluate(minibatch.obs, minibatch.actions)   # PPO's minibatch of shuffled steps
        torch.testing.assert_close(log_prob, minibatch.log_probs, rtol=0, atol=1e-5)
        zeroed = {**minibatch.obs, "state": torch.zeros_like(minibatch.obs["state"])}
        assert not torch.allclose(policy.evaluate(zeroed, minibatch.actions)[0], minibatch.log_probs, atol=1e-3)
    # the state stored at an episode's first bar is zero, inside it the one carried from the bar before
    starts = buffer.obs["state"][::episode_length]
    assert torch.equal(starts, torch.zeros_like(starts)) and buffer.obs["state"][1:episode_length].abs().sum() > 0
