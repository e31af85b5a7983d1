"""Typed messages between the levels, and the weight composition they feed.

Down: the meta-controller sends each specialist an `AllocationMessage` (its domain's share of
capital and the portfolio's risk appetite). Up: each specialist reports its domain's recent
performance (`PerformanceReport`). Across: a `CoordinationSignal` tells two specialists that their
sub-portfolios hedge (returns strongly negatively correlated) or concentrate risk (strongly
positively correlated), from the current positions and covariance. Under the consensus
coordinator (`hierarchy.consensus`), each voter's `ConsensusVote` and the `ConsensusDecision`
with its rationale.

Target weights follow DESIGN.md: w_i = L_max * rho * a_d(i) * s_i / n_d(i), so gross leverage is
at most L_max * rho whatever the signals; the risk overlay can only shrink them afterwards.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class AllocationMessage:
    domain: str
    allocation: float            # share of capital, on the simplex across domains
    risk_appetite: float         # in [0, 1], the same for every domain


@dataclass(frozen=True)
class PerformanceReport:
    domain: str
    last_return: float           # the domain's PnL contribution over the last bar / equity
    ewma_return: float           # recent average contribution (per bar)
    gross_exposure: float        # sum |w_i| over the domain
    net_exposure: float          # sum w_i over the domain


@dataclass(frozen=True)
class CoordinationSignal:
    domains: tuple[str, str]
    kind: str                    # 'hedge' or 'concentrate'
    correlation: float           # of the two domains' sub-portfolio returns


@dataclass(frozen=True)
class ConsensusVote:
    voter: str                   # a domain's specialist or the risk overlay
    allocation: dict[str, float]  # the allocation it proposes, per domain
    risk_appetite: float         # the appetite it proposes
    confidence: float            # in [0, 1]
    weight: float                # its performance weight
    share: float                 # its share of the vote (weight x confidence / strength)


@dataclass(frozen=True)
class ConsensusDecision:
    strength: float              # sum of weight x confidence over the voters
    disagreement: float          # weighted variance of the proposals, in [0, 1]
    held: bool                   # strength below the threshold: the book holds
    manual_review: bool          # disagreement at or above the review level
    rationale: str


Message = AllocationMessage | PerformanceReport | CoordinationSignal | ConsensusVote | ConsensusDecision


def as_record(message: Message) -> dict:
    return {"type": type(message).__name__, **asdict(message)}


def compose_weights(signals: np.ndarray, allocation: np.ndarray, appetite: np.ndarray,
                    domain_index: np.ndarray, max_leverage: float) -> np.ndarray:
    """Target weights (E, N) from instrument signals (E, N) in [-1, 1], allocations (E, D) on the
    simplex, risk appetite (E,) in [0, 1] and each instrument's domain (N,)."""
    sizes = np.bincount(domain_index, minlength=allocation.shape[1]).astype(np.float64)   # (D,)
    per_instrument = allocation[:, domain_index] / sizes[domain_index]                    # (E, N)
    return max_leverage * appetite[:, None] * per_instrument * signals


def domain_correlations(weights: np.ndarray, covariance: np.ndarray, domain_index: np.ndarray,
                        n_domains: int) -> np.ndarray:
    """(E, D, D) correlation of the domains' sub-portfolio returns given weights (E, N) and a
    covariance (N, N) or (E, N, N); 0 where a domain holds nothing."""
    one_hot = np.eye(n_domains)[domain_index]                          # (N, D)
    sub = weights[:, :, None] * one_hot[None]                          # (E, N, D)
    cov = covariance if covariance.ndim == 3 else covariance[None]
    domain_cov = sub.transpose(0, 2, 1) @ cov @ sub                    # (E, D, D), batched matmuls
    std = np.sqrt(np.maximum(np.einsum("edd->ed", domain_cov), 0.0))   # (E, D)
    denominator = std[:, :, None] * std[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, domain_cov / denominator, 0.0)


def coordination_signals(correlation: np.ndarray, domain_names: tuple[str, ...],
                         threshold: float = 0.5) -> list[CoordinationSignal]:
    """Signals for one env's (D, D) domain correlation: pairs beyond +/- threshold."""
    signals = []
    for a in range(len(domain_names)):
        for b in range(a + 1, len(domain_names)):
            rho = float(correlation[a, b])
            if abs(rho) >= threshold:
                signals.append(CoordinationSignal((domain_names[a], domain_names[b]),
                                                  "hedge" if rho < 0 else "concentrate", rho))
    return signals
