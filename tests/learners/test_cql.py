"""The CQL(H) penalty on a tiny case, and a CQL update on a small dataset."""

import math

import torch

from buffers.offline import OfflineDataset
from buffers.replay import Transitions
from learners.cql import CQLConfig, cql_penalty, train_offline
from learners.fabric import FabricConfig
from learners.sac import SACConfig


def test_penalty_tiny_case_with_and_without_importance_weights():
    q_data = torch.tensor([1.0])
    q_random, q_current, q_next = torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]])
    log_pi_current, log_pi_next = torch.tensor([[-1.0]]), torch.tensor([[0.5]])
    density = math.log(0.5)                                        # uniform on [-1, 1]
    weighted = cql_penalty(q_data, q_random, q_current, q_next, log_pi_current, log_pi_next, density, 1.0)
    expected = math.log(math.exp(2 - density) + math.exp(1 - 0.5) + math.exp(0 + 1)) - 1
    assert math.isclose(weighted.item(), expected, rel_tol=1e-6)
    plain = cql_penalty(q_data, q_random, q_current, q_next, log_pi_current, log_pi_next, density, 2.0, False)
    expected = 2 * math.log(math.exp(2 / 2) + math.exp(1 / 2) + math.exp(1 / 2) + math.exp(0)) - 1
    assert math.isclose(plain.item(), expected, rel_tol=1e-6)


def test_cql_is_conservative_on_actions_outside_the_data():
    # a one-step bandit: every dataset action is 0 with reward 0; CQL pushes Q of other actions below it
    torch.manual_seed(0)
    m = 512
    obs = torch.randn(m, 2)
    dataset = OfflineDataset(Transitions(obs, torch.zeros(m, 1), torch.zeros(m), obs, torch.ones(m)))
    config = CQLConfig(sac=SACConfig(hidden=32, batch_size=64), num_updates=300, lagrange=True, bc_steps=50)
    learner = train_offline(dataset, config, FabricConfig(log_dir="", torch_threads=1)).learner
    with torch.no_grad():
        q_data = torch.min(*learner.agent.q_values(obs, torch.zeros(m, 1))).mean()
        q_far = torch.min(*learner.agent.q_values(obs, torch.full((m, 1), 0.9))).mean()
    assert q_far < q_data - 0.5
