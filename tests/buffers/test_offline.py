"""Offline datasets: npz and Parquet round trips, normalisation, and the collector's truncation."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from buffers.offline import OfflineDataset, collect
from buffers.replay import Transitions


def _dataset(m: int = 7) -> OfflineDataset:
    g = torch.Generator().manual_seed(0)
    obs = {"domain": torch.randn(m, 3, generator=g) * 5 + 2, "instruments": torch.randn(m, 2, 4, generator=g)}
    next_obs = {k: v + 1 for k, v in obs.items()}
    return OfflineDataset(Transitions(obs, torch.randn(m, 2, generator=g), torch.randn(m, generator=g),
                                      next_obs, (torch.arange(m) % 3 == 0).float()), np.array([1.5, -2.0]))


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_save_load_round_trip(tmp_path, suffix):
    dataset = _dataset()
    dataset.save(tmp_path / f"data{suffix}")
    loaded = OfflineDataset.load(tmp_path / f"data{suffix}")
    for name in ("actions", "rewards", "terminated"):
        assert torch.equal(getattr(loaded.transitions, name), getattr(dataset.transitions, name))
    for key in ("domain", "instruments"):
        assert torch.equal(loaded.transitions.obs[key], dataset.transitions.obs[key])
        assert torch.equal(loaded.transitions.next_obs[key], dataset.transitions.next_obs[key])
    np.testing.assert_array_equal(loaded.episode_returns, dataset.episode_returns)


def test_unknown_suffix_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="data.csv"):
        _dataset().save(tmp_path / "data.csv")


def test_normalization_standardises_obs_and_next_obs_alike():
    dataset = _dataset(500)
    mean, std = dataset.normalization()
    normal = dataset.normalized(mean, std)
    torch.testing.assert_close(normal.transitions.obs["domain"].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(normal.transitions.obs["domain"].std(0), torch.ones(3), atol=1e-4, rtol=0)
    step = normal.transitions.next_obs["domain"] - normal.transitions.obs["domain"]   # raw step of 1
    torch.testing.assert_close(step, 1 / std["domain"].expand(500, 3))


def test_collector_keeps_the_true_final_observation_on_truncation():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 2,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    dataset = collect(envs, lambda obs: torch.zeros(obs.shape[0], 1), num_steps=205, seed=0)
    t = dataset.transitions
    assert len(dataset) == 410 and t.terminated.sum() == 0      # Pendulum only truncates (200 steps)
    obs, next_obs = t.obs.reshape(205, 2, 3), t.next_obs.reshape(205, 2, 3)
    # inside an episode next_obs[t] is obs[t + 1]; at the time limit it is the final obs, not the reset one
    assert torch.equal(next_obs[:199], obs[1:200])
    assert not torch.allclose(next_obs[199], obs[200])
    assert len(dataset.episode_returns) == 2 and (dataset.episode_returns < 0).all()


def test_collector_refuses_next_step_autoreset():
    envs = gym.make_vec("CartPole-v1", 2, "vector_entry_point")
    with pytest.raises(ValueError, match="SAME_STEP"):
        collect(envs, lambda obs: torch.zeros(obs.shape[0], dtype=torch.long), num_steps=3, seed=0)
