"""The hierarchy's networks behind the learners' interfaces: the log-densities the learners see
are the ones the rollouts sampled from, and each learner gets the right parameters."""

import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.agents import MetaAgent, SpecialistPolicy, SpecialistQAgent, specialist_obs
from hierarchy.system import HierarchicalSystem, HierarchyConfig


@pytest.fixture(scope="module")
def system_and_env():
    market = generate(SyntheticConfig(years=2, seed=1))
    env = VecMarketEnv(market, EnvConfig(episode_length=60), num_envs=5, seed=0)
    env.reset(seed=0)
    torch.manual_seed(0)
    return HierarchicalSystem(env, HierarchyConfig()), env


def test_ppo_sees_the_log_probs_and_values_the_rollout_recorded(system_and_env):
    system, env = system_and_env
    decision = system.decide(env)
    for d, step in enumerate(decision.specialists):
        obs = specialist_obs(step.domain_obs, step.instrument_obs, step.allocation, step.appetite)
        log_prob, entropy, value = SpecialistPolicy(system.specialist(d)).evaluate(obs, step.latent)
        torch.testing.assert_close(log_prob, step.log_prob)
        torch.testing.assert_close(value, step.value)
        assert entropy.shape == (5,) and torch.isfinite(entropy).all()


def test_cql_view_is_the_squashed_latent_policy(system_and_env):
    system, env = system_and_env
    step = system.decide(env).specialists[0]
    obs = specialist_obs(step.domain_obs, step.instrument_obs, step.allocation, step.appetite)
    agent = SpecialistQAgent(system.specialist(0), step.domain_obs.shape[1], hidden=16)
    positions = torch.tanh(step.latent)
    # change of variables: log pi(tanh u) = log N(u) - sum log(1 - tanh(u)^2)
    expected = step.log_prob - torch.log1p(-positions.pow(2)).sum(-1)
    torch.testing.assert_close(agent.log_prob(obs, positions), expected, rtol=1e-4, atol=1e-4)
    action, log_prob = agent.sample(obs)
    assert action.shape == positions.shape and (action.abs() < 1).all()
    torch.testing.assert_close(agent.log_prob(obs, action), log_prob, rtol=1e-3, atol=1e-3)
    q1, q2 = agent.q_values(obs, action)
    assert q1.shape == q2.shape == (5,)
    # CQL's repeats: n actions per state, as if each state were repeated n times
    torch.manual_seed(1)
    actions, log_probs = agent.sample(obs, repeats=3)
    repeated = {key: value.repeat_interleave(3, dim=0) for key, value in obs.items()}
    assert actions.shape == (15, positions.shape[1])
    torch.testing.assert_close(agent.log_prob(repeated, actions), log_probs, rtol=1e-3, atol=1e-3)
    for got, expected in zip(agent.q_values(obs, actions, repeats=3), agent.q_values(repeated, actions)):
        torch.testing.assert_close(got, expected)


def test_each_learner_gets_its_own_parameters(system_and_env):
    system, _ = system_and_env
    specialist = system.specialist(1)
    agent = SpecialistQAgent(specialist, 20, hidden=8)
    actor = {id(p) for p in agent.actor_parameters()}
    assert actor.isdisjoint(id(p) for p in specialist.value_head.parameters())
    assert actor.isdisjoint(id(p) for p in agent.critic_parameters())
    assert id(specialist.log_std) in actor
    meta = MetaAgent(system.meta)
    meta_actor = {id(p) for p in meta.actor_parameters()}
    assert meta_actor.isdisjoint(id(p) for p in meta.critic_parameters())
    assert len(meta_actor) + len(list(meta.critic_parameters())) == len(list(system.meta.parameters()))


def test_meta_agent_packs_simplex_allocations_and_appetite(system_and_env):
    system, env = system_and_env
    obs = torch.as_tensor(env.meta_observation(), dtype=torch.float32)
    action, log_prob = MetaAgent(system.meta).sample(obs)
    assert action.shape == (5, 4) and log_prob.shape == (5,)
    torch.testing.assert_close(action[:, :3].sum(-1), torch.ones(5))
    assert ((action[:, 3] > 0) & (action[:, 3] < 1)).all() and torch.isfinite(log_prob).all()
    with torch.no_grad():
        q1, _ = MetaAgent(system.meta).q_values(obs, action)
    assert torch.isfinite(q1).all()
