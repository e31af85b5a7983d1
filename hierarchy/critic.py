"""The specialists' centralised critic (`learner.specialist_critic=central`, MAPPO; Yu et al., 2022).

The specialists keep their own actors; one critic sees the joint observation, every domain's
encoder input (its instruments' rows, domain state and coordination) and the guidance the meta
gave (allocation (D,) and appetite), and outputs one value per domain's reward, so each domain's
advantage is GAE of its own reward under the joint value. As in MAPPO, the critic learns
normalised value targets (`learners.ppo.ValueNormalizer`); `values` returns them in reward
units, as the rollouts and GAE need them.

MAPPO's details kept: a centralised value function of the environment-provided global state;
value normalisation (running mean and variance of the targets, per domain: exact running
statistics updated once per rollout, where MAPPO keeps a debiased EMA updated per minibatch);
value clipping around the old normalised values (clip 0.2, always on); separate optimizers for
the actors and the critic, each with its own gradient-norm clipping (at PPO's max_grad_norm, 0.5;
MAPPO: 10); GAE(0.95); advantage normalisation (per minibatch of each actor; MAPPO: over the
buffer). Not kept: parameter sharing between the actors (each specialist keeps its own), the
Huber loss (delta 10: the squared error on normalised targets of this size), agent-specific
global states, death masking (no agent leaves), recurrent policies; epochs and minibatches are
PPO's here (2 x 4), not MAPPO's per-benchmark choices.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hierarchy.networks import tanh_mlp
from learners.ppo import ValueNormalizer


def joint_observation(domain_obs: list[Tensor], allocation: Tensor, appetite: Tensor) -> Tensor:
    """(B, sum F_d + D + 1): every domain's encoder input (B, F_d), the allocation (B, D) and the
    appetite (B,)."""
    return torch.cat([*domain_obs, allocation, appetite[:, None]], dim=-1)


class CentralCritic(nn.Module):
    """Joint observation -> normalised values (B, D), one per domain, and their normaliser."""

    def __init__(self, domain_obs_dims: list[int], hidden: int) -> None:
        super().__init__()
        n_domains = len(domain_obs_dims)
        self.net = tanh_mlp(sum(domain_obs_dims) + n_domains + 1, hidden, n_domains, out_gain=1.0)
        self.value_norm = ValueNormalizer((n_domains,))

    def forward(self, joint: Tensor) -> Tensor:
        return self.net(joint)

    def values(self, domain_obs: list[Tensor], allocation: Tensor, appetite: Tensor) -> Tensor:
        """(B, D) values in reward units."""
        return self.value_norm.denormalize(self(joint_observation(domain_obs, allocation, appetite)))
