"""MAPPO's centralised critic of the specialists: its joint input, one value per domain in the
rollouts and each domain's advantage from them, value normalisation, the actors' PPO without a
value loss, and the critic learning the rollout's value targets."""

import numpy as np
import pytest
import torch

from buffers.rollout import RolloutBuffer, compute_gae
from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.agents import SpecialistActor, specialist_obs
from hierarchy.critic import joint_observation
from hierarchy.rollouts import collect_rollout
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from learners.fabric import FabricConfig, adam, make_fabric
from learners.ppo import PPOConfig, ValueNormalizer, ppo_update, value_update

E, T, SCALE = 4, 30, 100.0


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=3))


@pytest.fixture(scope="module")
def fabric():
    return make_fabric(FabricConfig(seed=0))


def rollout(market, seed=1):
    env = VecMarketEnv(market, EnvConfig(episode_length=100), num_envs=E, seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig(), central_critic=True)
    system.fixed_meta = True
    buffers = [RolloutBuffer(T, E) for _ in system.domain_names]
    collect_rollout(env, system, T, seed=seed, reward_scale=SCALE, specialist_buffers=buffers)
    return system, buffers


def step_inputs(buffers, t):
    """Step t's (domain_obs per domain, allocation (E, D), appetite (E,)) from the buffers."""
    return ([b.obs["domain_obs"][t] for b in buffers], torch.stack([b.obs["allocation"][t] for b in buffers], dim=-1),
            buffers[0].obs["appetite"][t])


def test_the_critic_sees_every_domain_and_the_guidance_and_values_each_domain(market):
    system, buffers = rollout(market)
    dims = [b.obs["domain_obs"].shape[-1] for b in buffers]
    D = len(system.domain_names)
    x = joint_observation(*step_inputs(buffers, 0))
    assert x.shape == (E, sum(dims) + D + 1)
    assert system.central_critic.net[0].in_features == sum(dims) + D + 1
    assert system.central_critic(x).shape == (E, D)
    # the rollout stored column d of the critic as domain d's value
    with torch.no_grad():
        values = system.central_critic.values(*step_inputs(buffers, 0))
    for d, buffer in enumerate(buffers):
        assert torch.allclose(buffer.values[0], values[:, d])


def test_each_domain_has_the_advantage_of_its_own_reward(market):
    system, buffers = rollout(market)
    for buffer in buffers:
        last = buffer.advantages[-1] - buffer.rewards[-1] + buffer.values[-1]      # gamma V(s_T), no episode end
        advantages, _ = compute_gae(buffer.rewards, buffer.values, buffer.terminated, buffer.truncated,
                                    buffer.final_values, last / 0.99, 0.99, 0.95)
        assert torch.allclose(advantages, buffer.advantages, atol=1e-5)
    assert not torch.allclose(buffers[0].advantages, buffers[1].advantages)


def test_value_normalisation_round_trips_and_tracks_the_targets():
    normalizer = ValueNormalizer((2,))
    returns = torch.tensor([[1.0, -10.0], [3.0, 10.0], [5.0, 0.0]])
    normalizer.update(returns)
    assert torch.allclose(normalizer.mean.float(), returns.mean(0), atol=1e-3)
    normal = normalizer.normalize(returns)
    assert torch.allclose(normal.mean(0), torch.zeros(2), atol=1e-3)
    assert torch.allclose(normalizer.denormalize(normal), returns, atol=1e-5)


def test_the_actors_learn_without_a_value_loss(market, fabric):
    system, buffers = rollout(market)
    actor = SpecialistActor(system.specialist(0))
    batch = buffers[0].flatten()
    before = actor.specialist.value_head[0].weight.clone()
    stats = ppo_update(actor, adam(actor.parameters(), lr=1e-3), batch, PPOConfig(num_minibatches=2, update_epochs=1),
                       fabric)
    assert "losses/value_loss" not in stats and np.isfinite(stats["losses/policy_loss"])
    assert torch.equal(actor.specialist.value_head[0].weight, before)           # its own value head is idle
    obs = specialist_obs(*(batch.obs[k] for k in ("domain_obs", "instrument_obs", "allocation", "appetite")))
    assert actor.evaluate(obs, batch.actions)[2] is None


def test_the_central_critic_learns_the_rollouts_value_targets(market, fabric):
    system, buffers = rollout(market)
    critic = system.central_critic
    batches = [b.flatten() for b in buffers]
    x = joint_observation([b.obs["domain_obs"] for b in batches],
                          torch.stack([b.obs["allocation"] for b in batches], dim=1), batches[0].obs["appetite"])
    returns = torch.stack([b.returns for b in batches], dim=1)
    optimizer = adam(critic.parameters(), lr=3e-3)
    config = PPOConfig(num_minibatches=4, update_epochs=10)

    def predicted() -> torch.Tensor:
        with torch.no_grad():
            return critic.value_norm.denormalize(critic(x))

    explained = []
    for _ in range(15):   # as successive rollouts would: the values the last update left are the old ones
        stats = value_update(critic, critic.value_norm, optimizer, x, predicted(), returns, config, fabric)
        explained.append(stats["losses/explained_variance"])
    assert explained[0] < 0.2 and float(1 - (returns - predicted()).var() / returns.var()) > 0.5
