"""Phase 1's offline pre-training of the specialists: CQL on the behaviour policies' data, then
the PPO value head distilled from the conservative critics.

Each specialist's dataset holds its observation dict (the meta-controller held at equal
allocation and full risk appetite, as during collection and in phase 1's PPO), the behaviour's
positions in (-1, 1) as actions, and the domain reward times `reward_scale`, the same scale PPO
then learns with, so the distilled value is in PPO's units. CQL trains the specialist's own
encoder, heads and log std as its squashed-Gaussian actor (`hierarchy.agents.SpecialistQAgent`),
so afterwards PPO starts from the conservative policy as it is.
"""

from __future__ import annotations

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import Tensor

from buffers.offline import OfflineDataset
from buffers.replay import Transitions
from hierarchy.agents import SpecialistQAgent, specialist_obs
from hierarchy.networks import Specialist
from hierarchy.offline import SpecialistTransitions
from learners.cql import CQLConfig, CQLLearner
from learners.fabric import adam, check_finite, optimize


def specialist_dataset(transitions: SpecialistTransitions, n_domains: int, reward_scale: float) -> OfflineDataset:
    """An `OfflineDataset` of one specialist's behaviour transitions (see module docstring)."""
    M = len(transitions.reward)
    allocation, appetite = torch.full((M,), 1.0 / n_domains), torch.ones(M)

    def obs(domain_obs: np.ndarray, instrument_obs: np.ndarray) -> dict[str, Tensor]:
        return specialist_obs(torch.as_tensor(domain_obs), torch.as_tensor(instrument_obs), allocation, appetite)

    return OfflineDataset(Transitions(
        obs(transitions.domain_obs, transitions.instrument_obs),
        torch.tanh(torch.as_tensor(transitions.latent_action)),
        torch.as_tensor(transitions.reward * reward_scale, dtype=torch.float32),
        obs(transitions.next_domain_obs, transitions.next_instrument_obs),
        torch.as_tensor(transitions.terminated, dtype=torch.float32)))


def pretrain_specialist(specialist: Specialist, dataset: OfflineDataset, config: CQLConfig, fabric: Fabric,
                        critic_hidden: int = 256) -> tuple[SpecialistQAgent, dict[str, float]]:
    """`config.num_updates` CQL steps on `dataset`, training `specialist` in place as the actor;
    returns the agent (with its critics) and the last update's statistics."""
    domain_obs_dim = dataset.transitions.obs["domain_obs"].shape[1]
    agent = SpecialistQAgent(specialist, domain_obs_dim, critic_hidden).to(fabric.device)
    learner = CQLLearner(agent, len(specialist.symbols), config, fabric)
    dataset = dataset.to(fabric.device)
    stats: dict[str, float] = {}
    for _ in range(config.num_updates):
        stats = learner.update(dataset.sample(config.sac.batch_size))
    return agent, stats


def distill_value(agent: SpecialistQAgent, dataset: OfflineDataset, fabric: Fabric, steps: int,
                  batch_size: int = 256, lr: float = 1e-3) -> float:
    """Fit the specialist's value head V(s) to min_i Q_i(s, tanh(mean(s))), the critics' value of
    the pre-trained policy's deterministic action, on the dataset's states (gradients averaged
    over processes); returns the final mean squared error."""
    specialist = agent.specialist
    optimizer = adam(specialist.value_head.parameters(), lr=lr)
    loss = torch.zeros(())
    for step in range(steps):
        obs = dataset.sample(batch_size).obs
        with torch.no_grad():
            target = torch.min(*agent.q_values(obs, agent.act(obs, deterministic=True)))
        value = specialist.value(obs["domain_obs"], obs["allocation"], obs["appetite"])
        loss = ((value - target) ** 2).mean()
        check_finite({"losses/value_distillation": loss}, "value distillation", step)
        optimize(fabric, loss, optimizer)
    return loss.item()
