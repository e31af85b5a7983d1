"""The decision pipeline on the real simulator: shapes, the meta's rhythm, composition limits,
determinism in evaluation, and messages."""

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.system import HierarchicalSystem, HierarchyConfig


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=0))


def make(market, num_envs=4, **kwargs):
    env = VecMarketEnv(market, EnvConfig(episode_length=60), num_envs=num_envs, seed=0)
    env.reset(seed=0)
    torch.manual_seed(0)
    return env, HierarchicalSystem(env, HierarchyConfig(**kwargs))


def test_decision_shapes_and_composition_bounds(market):
    env, system = make(market, meta_period=3, max_leverage=1.5)
    decision = system.decide(env)
    E, N, D = 4, 8, 3
    assert decision.target_weights.shape == (E, N) and decision.signals.shape == (E, N)
    assert np.allclose(decision.allocation.sum(1), 1.0) and ((decision.appetite >= 0) & (decision.appetite <= 1)).all()
    gross = np.abs(decision.target_weights).sum(1)
    assert (gross <= 1.5 * decision.appetite + 1e-9).all()
    assert [s.latent.shape for s in decision.specialists] == [(E, 3), (E, 2), (E, 3)]
    assert decision.meta_action.shape == (E, D + 1) and decision.meta_acted.all()


def test_meta_holds_between_its_decisions(market):
    env, system = make(market, meta_period=3)
    allocations = []
    for _ in range(7):
        decision = system.decide(env)
        allocations.append(decision.allocation.copy())
        env.step(decision.target_weights)
    assert np.array_equal(allocations[0], allocations[1]) and np.array_equal(allocations[1], allocations[2])
    assert not np.array_equal(allocations[2], allocations[3])
    assert np.array_equal(allocations[3], allocations[5]) and not np.array_equal(allocations[5], allocations[6])
    # the env shows the guidance to the specialists
    column = env.layout.instrument_column("allocation")
    assert np.allclose(env.instrument_observation()[:, :, column], allocations[-1][:, env.domain_index])


def test_fixed_meta_and_deterministic_evaluation(market):
    env, system = make(market)
    system.fixed_meta = True
    decision = system.decide(env)
    assert np.allclose(decision.allocation, 1 / 3) and np.allclose(decision.appetite, 1.0)
    system.eval()
    env2, _ = make(market)
    a = system.decide(env2, deterministic=True).target_weights
    env3, _ = make(market)
    system.restart()
    b = system.decide(env3, deterministic=True).target_weights
    assert np.array_equal(a, b)


def test_messages(market):
    env, system = make(market)
    for _ in range(30):
        env.step(system.decide(env).target_weights)
    decision = system.decide(env)
    kinds = [m["type"] for m in system.messages(decision, env, 0)]
    assert kinds.count("AllocationMessage") == 3 and kinds.count("PerformanceReport") == 3
