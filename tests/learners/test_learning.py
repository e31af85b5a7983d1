"""Learning at a small budget: PPO solves CartPole, SAC clearly improves Pendulum."""

import numpy as np
import pytest
import torch

from learners.fabric import FabricConfig
from learners.gym_tasks import evaluate
from learners.ppo import PPOConfig, train_ppo
from learners.sac import SACConfig, train_sac


@pytest.mark.slow
def test_ppo_solves_cartpole():
    # rl-baselines3-zoo's CartPole settings, on gymnasium's batched CartPole (NEXT_STEP autoreset)
    config = PPOConfig(total_timesteps=80_000, num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20,
                       gamma=0.98, gae_lambda=0.8, learning_rate=1e-3, ent_coef=0.0,
                       vectorization="vector_entry_point")
    policy = train_ppo("CartPole-v1", config, FabricConfig(seed=0, log_dir="", torch_threads=1)).policy
    returns = evaluate("CartPole-v1", lambda obs: policy.act(obs, deterministic=True)[0], episodes=5, seed=100)
    assert returns.mean() >= 195


@pytest.mark.slow
def test_sac_improves_pendulum():
    config = SACConfig(total_timesteps=4_000, learning_starts=100, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3,
                       hidden=128)
    agent = train_sac("Pendulum-v1", config, FabricConfig(seed=0, log_dir="", torch_threads=1)).learner.agent
    trained = evaluate("Pendulum-v1", lambda obs: agent.act(obs, deterministic=True), 5, seed=100, rescale_actions=True)
    rng = np.random.default_rng(0)
    uniform = evaluate("Pendulum-v1", lambda obs: torch.as_tensor(rng.uniform(-1, 1, (1, 1))), 5, seed=100,
                       rescale_actions=True)
    assert trained.mean() > -600 and trained.mean() > uniform.mean() + 400
