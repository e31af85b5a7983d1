"""SAC's mechanics: Polyak-averaged targets, the delayed actor, the critics frozen for the actor's
loss, and the early stop that makes medium-quality behaviour policies."""

import copy

import torch

from buffers.replay import Transitions
from learners.fabric import FabricConfig, make_fabric
from learners.networks import SquashedGaussianAgent
from learners.sac import SACConfig, SACLearner, train_sac


def _batch() -> Transitions:
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(16, 3, generator=g)
    return Transitions(obs, torch.rand(16, 1, generator=g) * 2 - 1, torch.randn(16, generator=g), obs,
                       torch.zeros(16))


def _learner(**overrides) -> SACLearner:
    fabric = make_fabric(FabricConfig(log_dir=""))
    return SACLearner(SquashedGaussianAgent(3, 1, (8, 8)), 1, SACConfig(**overrides), fabric)


def test_targets_move_tau_of_the_way_to_the_critics():
    learner = _learner(tau=0.1)
    target_before = copy.deepcopy(learner.target.q1.state_dict())
    learner.update(_batch())
    for name, online in learner.agent.q1.state_dict().items():
        torch.testing.assert_close(learner.target.q1.state_dict()[name], 0.9 * target_before[name] + 0.1 * online)


def test_policy_delay_steps_the_actor_every_other_update():
    learner = _learner(policy_delay=2)
    actor = [p.clone() for p in learner.agent.actor.parameters()]
    learner.update(_batch())
    assert all(torch.equal(a, p) for a, p in zip(actor, learner.agent.actor.parameters()))
    learner.update(_batch())
    assert not all(torch.equal(a, p) for a, p in zip(actor, learner.agent.actor.parameters()))


def test_the_actor_step_computes_no_critic_gradients():
    learner = _learner()
    critics = list(learner.agent.critic_parameters())
    for p in critics:
        p.grad = torch.zeros_like(p)
    learner.actor_and_alpha_step(_batch().obs, learner.alpha)
    assert all(torch.count_nonzero(p.grad) == 0 and p.requires_grad for p in critics)


def test_stop_at_return_ends_training_after_five_episodes_that_reach_it():
    config = SACConfig(total_timesteps=5_000, learning_starts=10_000, hidden=8)   # random actions only
    result = train_sac("Pendulum-v1", config, FabricConfig(log_dir=""), stop_at_return=-1e9)
    assert len(result.episode_returns) == 5 and len(result.replay) == 5 * 200
