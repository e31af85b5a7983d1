"""The learned risk agent: it reads the portfolio's risk state from the meta observation, its
appetite stays in [0, 1] whatever the state, it replaces the meta's appetite head and learns
with the actor, and the overlay's hard limits still bind above it."""

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from hierarchy.agents import MetaAgent
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from risk.env_hook import risk_env
from risk.limits import RiskLimits


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=0))


def make(market, limits=None, num_envs=3):
    env = risk_env(market, EnvConfig(episode_length=60), limits or RiskLimits(), num_envs=num_envs, seed=0)
    env.reset(seed=0)
    torch.manual_seed(0)
    return env, HierarchicalSystem(env, HierarchyConfig(risk_agent="learned"))


def test_the_risk_state_is_drawdown_volatility_and_correlation(market):
    env, system = make(market)
    for _ in range(5):
        env.step(system.decide(env).target_weights)
    meta_obs = torch.as_tensor(env.meta_observation(), dtype=torch.float32)
    state = system.meta.risk_agent.risk_state(meta_obs).double().numpy()
    observation = env.observation
    assert np.allclose(state[:, 0], env.drawdown, atol=1e-6)
    volatility = observation[:, env.layout.portfolio_column("volatility")] * np.sqrt(market.bars_per_year)
    assert np.allclose(state[:, 1], volatility, rtol=1e-5)
    N = market.n_instruments
    first = env.layout.size - env.layout.n_global
    assert np.allclose(state[:, 2], observation[:, first: first + N * (N - 1) // 2].mean(axis=1), atol=1e-6)


def test_its_appetite_stays_in_the_unit_interval_and_replaces_the_meta_head(market):
    _, system = make(market)
    meta = system.meta
    D = len(system.domain_names)
    assert meta.actor[-1].out_features == 2 * (D - 1)          # the actor keeps the allocation's latents only
    obs = torch.randn(64, meta.actor[0][0].in_features) * 100.0
    allocation, appetite, _ = meta.act(obs)
    _, mode, _ = meta.act(obs, deterministic=True)
    assert ((appetite >= 0) & (appetite <= 1)).all() and ((mode >= 0) & (mode <= 1)).all()
    assert torch.allclose(allocation.sum(-1), torch.ones(64))
    with torch.no_grad():
        meta.risk_agent.net[-1].bias[0] = -20.0                 # the risk agent says: no risk
    assert torch.allclose(meta.act(obs, deterministic=True)[1], torch.zeros(64), atol=1e-6)
    risk_params = {id(p) for p in meta.risk_agent.parameters()}
    assert risk_params <= {id(p) for p in MetaAgent(meta).actor_parameters()}


def test_the_overlay_limits_still_bind_above_it(market):
    limits = RiskLimits(max_gross_leverage=0.5, max_class_share=1.0, max_var=1.0, max_correlation_exposure=1.0)
    env, system = make(market, limits)
    with torch.no_grad():
        system.meta.risk_agent.net[-1].bias[0] = 20.0           # full risk appetite
        for d in range(len(system.domain_names)):
            system.specialist(d).heads.layers[-1].bias.fill_(5.0)   # every position near +1
    system.eval()
    for _ in range(4):
        decision = system.decide(env, deterministic=True)
        assert np.allclose(decision.appetite, 1.0)
        _, _, _, _, info = env.step(decision.target_weights)
        assert (np.abs(decision.target_weights).sum(1) > 1.5).all()
        assert (np.abs(info["executed_weights"]).sum(1) <= 0.5 + 1e-6).all()
