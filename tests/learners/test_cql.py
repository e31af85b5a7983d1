"""The CQL(H) penalty on a tiny case, the learner's sampled actions and penalties against a
source-by-source reference, and a CQL update on a small dataset."""

import math

import torch

from buffers.offline import OfflineDataset
from buffers.replay import Transitions
from learners.cql import CQLConfig, CQLLearner, cql_penalty, train_offline
from learners.fabric import FabricConfig, make_fabric
from learners.networks import SquashedGaussianAgent
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


def test_penalty_samples_come_from_their_states_and_enter_with_their_own_log_densities():
    torch.manual_seed(0)
    B, n, A = 8, 4, 2
    agent = SquashedGaussianAgent(3, A, (16, 16))
    with torch.no_grad():   # a near-deterministic actor (std e^-5), so the samples show which states they came from
        agent.actor[-1].weight[A:] = 0.0
        agent.actor[-1].bias[A:] = -10.0
    learner = CQLLearner(agent, A, CQLConfig(sac=SACConfig(hidden=16), cql_n_actions=n),
                         make_fabric(FabricConfig(log_dir="", torch_threads=1)))
    batch = Transitions(torch.randn(B, 3), torch.rand(B, A) * 2 - 1, torch.randn(B), torch.randn(B, 3), torch.zeros(B))
    random_actions, policy_actions, policy_log_prob = learner.penalty_actions(batch)
    current, next_ = policy_actions.split(B * n)
    obs_n, next_obs_n = batch.obs.repeat_interleave(n, 0), batch.next_obs.repeat_interleave(n, 0)
    torch.testing.assert_close(current, agent.act(obs_n, deterministic=True), atol=0.03, rtol=0)
    torch.testing.assert_close(next_, agent.act(next_obs_n, deterministic=True), atol=0.03, rtol=0)

    agent.actor[-1].reset_parameters()   # a spread-out policy again: the log densities matter in the penalty
    random_actions, policy_actions, policy_log_prob = learner.penalty_actions(batch)
    current, next_ = policy_actions.split(B * n)
    q1_data, q2_data, penalty1, penalty2 = learner.penalties(batch, random_actions, policy_actions, policy_log_prob)
    log_pi_current, log_pi_next = policy_log_prob.view(2, B, n)
    for i, (q_data, penalty) in enumerate(((q1_data, penalty1), (q2_data, penalty2))):
        def q(obs, actions, i=i):   # critic i on its own, one source of actions at a time
            return agent.q_values(obs, actions)[i]
        expected = cql_penalty(q(batch.obs, batch.actions), q(obs_n, random_actions).view(B, n),
                               q(obs_n, current).view(B, n), q(obs_n, next_).view(B, n),
                               log_pi_current, log_pi_next, A * math.log(0.5), 1.0)
        torch.testing.assert_close(q_data, q(batch.obs, batch.actions))
        torch.testing.assert_close(penalty, expected)
