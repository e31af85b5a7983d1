"""The consensus coordinator (`hierarchy.coordinator=consensus`): in place of the meta-controller,
the specialists and the risk overlay vote on the book's allocation and risk appetite.

Every voter k submits a proposal p_k = (allocation a_k on the simplex over the D domains,
risk appetite rho_k in [0, 1]) and a confidence c_k in [0, 1]:
  - specialist d: its conviction c_d = mean_i |tanh(mu_i)| of its instruments' positions under
    the guidance in force; it claims capital for its domain in proportion to it,
    a_d = (1 - c_d) / D + c_d e_d, and asks for full risk, rho_d = 1;
  - the risk overlay: its drawdown utilisation u = min(drawdown / max_drawdown, 1) as confidence,
    the headroom rho = 1 - u, and an inverse-volatility allocation across domains.

Weights follow each voter's recent risk-adjusted performance (the update rule, per env and bar,
lambda = 1 - 2 ** (-1 / halflife)):

    r_d = domain d's return contribution of the last bar;  r_overlay = -sum_d r_d
    m_k <- m_k + lambda (r_k - m_k);  s_k <- (1 - lambda) (s_k + lambda (r_k - m_k_before) ** 2)
    w = softmax(m / sqrt(s + eps) / temperature)        (an EWMA Sharpe ratio per bar)

so a specialist gains weight while its domain earns well per unit of risk, and the overlay, the
voice of caution, while the book loses. The vote, at the meta-controller's rhythm:

    strength S = sum_k w_k c_k in [0, 1]; below `threshold` the book holds (the allocation and
    appetite in force stay); else shares omega_k = w_k c_k / S and the consensus
    a = sum_k omega_k a_k, rho = sum_k omega_k rho_k;
    disagreement Delta = sum_k omega_k (|a_k - a|^2 + (rho_k - rho)^2) / (1 - 1/D + 1/4) in [0, 1]
    (the weighted variance of the proposals over its largest possible value);
    the appetite executed is rho (1 - Delta), and Delta >= `review` flags the decision for manual
    review in the decision log.

Specialists that all claim the capital for themselves disagree: confident specialists competing
for the book lower its exposure, as the rule intends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hierarchy.messages import ConsensusDecision, ConsensusVote

OVERLAY = "risk_overlay"        # the risk overlay's name among the voters
EPSILON = 1e-12                 # keeps the EWMA Sharpe ratio finite before any variance


@dataclass
class ConsensusConfig:
    """The consensus engine's settings (`hierarchy.consensus`)."""

    threshold: float = 0.1       # vote strength below which the book holds
    review: float = 0.5          # disagreement from which a decision is flagged for manual review
    halflife: float = 21.0       # bars, of the EWMA performance behind the weights
    temperature: float = 0.1     # of the softmax over per-bar EWMA Sharpe ratios


@dataclass
class Proposals:
    """What K voters propose in E envs."""

    allocation: np.ndarray       # (E, K, D) on the simplex
    appetite: np.ndarray         # (E, K) in [0, 1]
    confidence: np.ndarray       # (E, K) in [0, 1]


@dataclass
class Verdict:
    """The consensus of E envs' votes."""

    proposals: Proposals
    weights: np.ndarray          # (E, K) performance weights, summing to 1
    shares: np.ndarray           # (E, K) vote shares w c / S (zero where the book holds)
    strength: np.ndarray         # (E,) S
    disagreement: np.ndarray     # (E,) Delta in [0, 1]
    held: np.ndarray             # (E,) bool, S below the threshold: the book holds
    review: np.ndarray           # (E,) bool, Delta at or above the review level
    allocation: np.ndarray       # (E, D) the consensus allocation (where not held)
    appetite: np.ndarray         # (E,) the consensus appetite after the disagreement cut (where not held)


def specialist_proposals(convictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each specialist's (allocation (E, D, D), appetite (E, D)) from its conviction (E, D):
    specialist d claims its domain's capital in proportion to its conviction, at full risk."""
    E, D = convictions.shape
    claim = convictions[:, :, None]
    return (1.0 - claim) / D + claim * np.eye(D)[None], np.ones((E, D))


def overlay_proposal(drawdown: np.ndarray, max_drawdown: float,
                     domain_vol: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The risk overlay's (allocation (E, D), appetite (E,), confidence (E,)) from the drawdown
    (E,), the kill switch's drawdown and each domain's mean instrument volatility (E, D):
    inverse-volatility allocation (equal where a volatility is not positive), the headroom left
    before the kill switch as appetite, its utilisation as confidence."""
    utilisation = np.clip(drawdown / max_drawdown, 0.0, 1.0)
    inverse = np.where(domain_vol > 0, 1.0 / np.where(domain_vol > 0, domain_vol, 1.0), 0.0)
    usable = (domain_vol > 0).all(axis=1, keepdims=True)
    allocation = np.where(usable, inverse / np.where(usable, inverse.sum(axis=1, keepdims=True), 1.0),
                          1.0 / domain_vol.shape[1])
    return allocation, 1.0 - utilisation, utilisation


def vote(proposals: Proposals, weights: np.ndarray, threshold: float, review: float) -> Verdict:
    """The weighted vote of the module docstring on E envs' proposals and weights (E, K)."""
    E, K, D = proposals.allocation.shape
    votes = weights * proposals.confidence                              # (E, K)
    strength = votes.sum(axis=1)
    held = strength < threshold
    shares = np.where(held[:, None], 0.0, votes / np.where(held, 1.0, strength)[:, None])
    allocation = np.einsum("ek,ekd->ed", shares, proposals.allocation)
    appetite = (shares * proposals.appetite).sum(axis=1)
    spread = (((proposals.allocation - allocation[:, None]) ** 2).sum(axis=2)
              + (proposals.appetite - appetite[:, None]) ** 2)          # (E, K)
    disagreement = np.clip((shares * spread).sum(axis=1) / (1.0 - 1.0 / D + 0.25), 0.0, 1.0)
    return Verdict(proposals, weights, shares, strength, disagreement, held, ~held & (disagreement >= review),
                   allocation, appetite * (1.0 - disagreement))


class PerformanceWeights:
    """Each voter's EWMA return and variance per env, and the softmax weights of their ratio
    (the update rule of the module docstring)."""

    def __init__(self, num_voters: int, halflife: float, temperature: float) -> None:
        self.num_voters, self.temperature = num_voters, temperature
        self.decay = 1.0 - 2.0 ** (-1.0 / halflife)                     # lambda
        self.bind(1)

    def bind(self, num_envs: int) -> None:
        """Fresh records for `num_envs` envs: equal weights."""
        self.mean = np.zeros((num_envs, self.num_voters))
        self.var = np.zeros((num_envs, self.num_voters))

    def restart(self, envs: np.ndarray | slice) -> None:
        """Envs whose episode (re)started: their records start afresh."""
        self.mean[envs], self.var[envs] = 0.0, 0.0

    def update(self, returns: np.ndarray, envs: np.ndarray) -> None:
        """One bar of each voter's return (E, K) in the envs of bool mask `envs`."""
        lam, surprise = self.decay, returns[envs] - self.mean[envs]
        self.mean[envs] += lam * surprise
        self.var[envs] = (1.0 - lam) * (self.var[envs] + lam * surprise ** 2)

    def weights(self) -> np.ndarray:
        """(E, K) softmax of the EWMA Sharpe ratios over the temperature."""
        score = self.mean / np.sqrt(self.var + EPSILON) / self.temperature
        score -= score.max(axis=1, keepdims=True)
        weight = np.exp(score)
        return weight / weight.sum(axis=1, keepdims=True)


def voter_returns(domain_returns: np.ndarray) -> np.ndarray:
    """(E, D + 1) each voter's return from the domains' (E, D): the specialists', then the
    overlay's, the book's loss."""
    return np.concatenate([domain_returns, -domain_returns.sum(axis=1, keepdims=True)], axis=1)


def verdict_records(verdict: Verdict, row: int, voters: tuple[str, ...], domains: tuple[str, ...],
                    threshold: float) -> list[ConsensusVote | ConsensusDecision]:
    """Row `row` of a verdict as messages: every vote, then the decision with its rationale."""
    p = verdict.proposals
    votes = [ConsensusVote(name, dict(zip(domains, p.allocation[row, k].tolist())), float(p.appetite[row, k]),
                           float(p.confidence[row, k]), float(verdict.weights[row, k]),
                           float(verdict.shares[row, k])) for k, name in enumerate(voters)]
    strength, delta = float(verdict.strength[row]), float(verdict.disagreement[row])
    if verdict.held[row]:
        rationale = f"strength {strength:.3f} < threshold {threshold:.3f}: the book holds"
    else:
        leader = voters[int(np.argmax(verdict.shares[row]))]
        rationale = (f"strength {strength:.3f} >= threshold {threshold:.3f}: adopted, led by {leader}; "
                     f"disagreement {delta:.3f} scales exposure by {1.0 - delta:.3f}")
        if verdict.review[row]:
            rationale += "; manual review: disagreement at or above the review level"
    return [*votes, ConsensusDecision(strength, delta, bool(verdict.held[row]), bool(verdict.review[row]),
                                      rationale)]
