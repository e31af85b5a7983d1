"""The meta-controller's action distribution: an allocation on the simplex and a risk appetite.

SAC needs reparameterised samples and a proper log-density of the action it feeds its critics.
We sample a Gaussian latent z in R^D, squash it, and map it bijectively onto the action:

    y = tanh(z)                                   in (-1, 1)^D
    allocation = softmax([c*y_1, ..., c*y_{D-1}, 0])    additive-logistic map onto the open simplex
    appetite  = (y_D + 1) / 2                     in (0, 1)

The allocation's first D-1 coordinates determine it, and the map from (c*y_1..c*y_{D-1}) to them
has Jacobian determinant prod_{i=1..D} allocation_i (the logistic-normal change of variables).
So, with the tanh correction as in SAC,

    log p(action) = sum_j [log N(z_j; mu_j, sigma_j) - log(1 - y_j^2)]
                    - (D-1) log c - sum_{i=1..D} log allocation_i - log(1/2)

a density with respect to Lebesgue measure on (allocation_1..allocation_{D-1}, appetite). The
scale c bounds the logits, so no domain's share falls below about exp(-2c) of another's. We chose
this over a Dirichlet because it reuses SAC's squashed-Gaussian machinery, its samples are
reparameterised exactly, and its target entropy (-D) means what it does in SAC.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from learners.networks import LOG_STD_MAX, LOG_STD_MIN


class AllocationDistribution:
    """A batch of meta-controller policies; `mean`, `log_std` are (B, D) for D domains."""

    def __init__(self, mean: Tensor, log_std: Tensor, logit_scale: float = 3.0) -> None:
        self.mean = mean
        self.std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        self.logit_scale = logit_scale
        self.n_domains = mean.shape[-1]

    def _logits(self, y: Tensor) -> Tensor:
        return torch.cat([self.logit_scale * y[:, :-1], torch.zeros_like(y[:, :1])], dim=-1)

    def to_action(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map squashed latents (B, D) to (allocation (B, D), appetite (B,))."""
        return torch.softmax(self._logits(y), dim=-1), 0.5 * (y[:, -1] + 1.0)

    def log_prob_of_latent(self, z: Tensor) -> Tensor:
        """(B,) log-density of the action reached from the pre-squash latent z (exact and stable:
        log(1 - tanh(z)^2) = 2 (log 2 - z - softplus(-2z)), log allocation via log_softmax)."""
        gaussian = torch.distributions.Normal(self.mean, self.std).log_prob(z).sum(-1)
        tanh_correction = (2.0 * (math.log(2.0) - z - F.softplus(-2.0 * z))).sum(-1)
        log_allocation = torch.log_softmax(self._logits(torch.tanh(z)), dim=-1)
        simplex_correction = (self.n_domains - 1) * math.log(self.logit_scale) + log_allocation.sum(-1)
        return gaussian - tanh_correction - simplex_correction - math.log(0.5)

    def rsample(self) -> tuple[Tensor, Tensor, Tensor]:
        """Reparameterised (allocation, appetite, log_prob)."""
        z = self.mean + self.std * torch.randn_like(self.mean)
        allocation, appetite = self.to_action(torch.tanh(z))
        return allocation, appetite, self.log_prob_of_latent(z)

    def mode(self) -> tuple[Tensor, Tensor]:
        """The deterministic action used in evaluation: the squashed mean."""
        return self.to_action(torch.tanh(self.mean))


def pack_action(allocation: Tensor, appetite: Tensor) -> Tensor:
    """The critics' view of a meta action: (B, D + 1) = [allocation, appetite]."""
    return torch.cat([allocation, appetite[:, None]], dim=-1)
