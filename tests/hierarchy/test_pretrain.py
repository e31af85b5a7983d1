"""Phase 1's offline pre-training: the specialist's dataset, CQL training the specialist as its
actor (conservative values at unseen actions), and the value head distilled from the critics."""

import copy

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.offline import collect_behaviour_transitions
from hierarchy.pretrain import distill_value, pretrain_specialist, specialist_dataset
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from learners.cql import CQLConfig
from learners.fabric import FabricConfig, make_fabric
from learners.sac import SACConfig


@pytest.fixture(scope="module")
def setup():
    market = generate(SyntheticConfig(years=1, seed=4))
    env = VecMarketEnv(market, EnvConfig(episode_length=40), num_envs=8, seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig(specialist_hidden=16))
    data = collect_behaviour_transitions(env, system, steps=60, rng=np.random.default_rng(0))
    return system, data


def test_dataset_holds_positions_scaled_rewards_and_the_phase1_guidance(setup):
    system, data = setup
    dataset = specialist_dataset(data["equity"], n_domains=3, reward_scale=100.0)
    t = dataset.transitions
    assert t.actions.shape == (len(dataset), 3) and (t.actions.abs() < 1).all()
    np.testing.assert_allclose(t.rewards.numpy(), data["equity"].reward * 100.0, rtol=1e-6)
    assert torch.allclose(t.obs["allocation"], torch.tensor(1 / 3)) and (t.obs["appetite"] == 1).all()
    assert t.next_obs["domain_obs"].shape == t.obs["domain_obs"].shape


def test_cql_trains_the_specialist_as_actor_and_stays_conservative(setup):
    system, data = setup
    specialist = copy.deepcopy(system.specialist(0))
    value_before = copy.deepcopy(specialist.value_head.state_dict())
    heads_before = [p.clone() for p in specialist.heads.parameters()]
    dataset = specialist_dataset(data["forex"], 3, 100.0)
    fabric = make_fabric(FabricConfig(log_dir=""))
    config = CQLConfig(sac=SACConfig(batch_size=64, actor_lr=1e-3), num_updates=150)
    agent, stats = pretrain_specialist(specialist, dataset, config, fabric, critic_hidden=32)
    assert not all(torch.equal(a, b) for a, b in zip(heads_before, specialist.heads.parameters()))
    assert all(torch.equal(v, specialist.value_head.state_dict()[k]) for k, v in value_before.items())
    t = dataset.transitions
    with torch.no_grad():
        q_data = torch.min(*agent.q_values(t.obs, t.actions)).mean()
        random = torch.rand_like(t.actions) * 2 - 1
        q_random = torch.min(*agent.q_values(t.obs, random)).mean()
    assert q_data > q_random                      # the conservative gap: unseen actions valued lower
    assert np.isfinite(stats["losses/cql_penalty"])

    def value_error() -> float:
        with torch.no_grad():
            target = torch.min(*agent.q_values(t.obs, agent.act(t.obs, deterministic=True)))
            value = specialist.value(t.obs["domain_obs"], t.obs["allocation"], t.obs["appetite"])
        return float(((value - target) ** 2).mean())

    before = value_error()
    distill_value(agent, dataset, fabric, steps=200)
    assert value_error() < 0.5 * before
