"""The learned risk agent (`hierarchy.risk_agent=learned`): the book's risk appetite from the
portfolio's risk state alone, in place of the meta-controller's appetite head.

It reads three columns of the meta observation: the drawdown from the episode's peak, the
realised volatility (the EWMA bar volatility of the portfolio's returns, annualised) and the
correlation regime (the mean of the EWMA correlations the observation carries, between
instruments or domains). A small tanh MLP maps them to the mean and log std of the appetite's
pre-squash latent, the last coordinate of the meta's `AllocationDistribution` (appetite =
(tanh(z) + 1) / 2 in (0, 1)). SAC trains it with the allocation, on the portfolio reward (log
return minus the drawdown, turnover and tail-risk penalties of `env`); the risk overlay's hard
limits apply to whatever it asks for.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from envs.views import PORTFOLIO_STATE, ObservationLayout
from hierarchy.networks import INITIAL_APPETITE, tanh_mlp

RISK_STATE: tuple[str, ...] = ("drawdown", "volatility", "correlation")


class RiskAgent(nn.Module):
    """Meta observation (B, F_m) -> (mean (B, 1), log std (B, 1)) of the appetite's latent."""

    def __init__(self, layout: ObservationLayout, correlation_pairs: int, bars_per_year: float,
                 hidden: int = 32) -> None:
        super().__init__()
        base = layout.instrument_end                 # the meta observation starts here in the flat row
        self.drawdown = layout.portfolio_column("drawdown") - base
        self.volatility = layout.portfolio_column("volatility") - base
        first = layout.domain_end + layout.portfolio_window + len(PORTFOLIO_STATE) - base   # global columns
        self.correlations = slice(first, first + correlation_pairs)
        self.annualise = math.sqrt(bars_per_year)
        self.net = tanh_mlp(len(RISK_STATE), hidden, 2, out_gain=0.01)
        # it starts where the meta's appetite head does: (nearly) full appetite
        nn.init.constant_(self.net[-1].bias[0], math.atanh(2.0 * INITIAL_APPETITE - 1.0))

    def risk_state(self, meta_obs: Tensor) -> Tensor:
        """(B, 3): drawdown, annualised volatility, mean correlation (0 without correlations)."""
        correlations = meta_obs[:, self.correlations]
        correlation = correlations.mean(-1) if correlations.shape[1] else torch.zeros_like(meta_obs[:, 0])
        return torch.stack([meta_obs[:, self.drawdown], meta_obs[:, self.volatility] * self.annualise,
                            correlation], dim=-1)

    def forward(self, meta_obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.net(self.risk_state(meta_obs)).chunk(2, dim=-1)
        return mean, log_std
