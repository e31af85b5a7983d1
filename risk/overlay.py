"""`RiskOverlay`: shrink a batch of target weights (E, N) into the hard limits of `RiskLimits`.

Measures of a book w (signed notionals / equity), S the one-bar return covariance, R its
correlation matrix (R_ij = 0 where an instrument has no variance):
    instrument       |w_i|                        <= cap_i
    asset_class      sum_{i in c} |w_i|           <= share_c * max_gross_leverage
    correlation      rho(w) = sum_{i != j} w_i R_ij w_j / sum_{i != j} |w_i| |w_j|
                                                  <= max_correlation_exposure (0 with < 2 positions)
    gross            sum_i |w_i|                  <= max_gross_leverage
    margin           sum_i m_class(i) |w_i|       <= max_margin_usage
    var              k * sqrt(w' S w)             <= max_var  (zero-mean parametric, one bar)
rho is the exposure-weighted average correlation between the P&Ls of every two positions held:
w_i R_ij w_j = |w_i| |w_j| s_i s_j R_ij, so a long and a short of negatively correlated
instruments (long EURUSD, short USDJPY: one dollar bet) count as correlated, and a hedge
(long SPX500, short NAS100) as anti-correlated.

The projection, per env, applies these steps in this order, each only shrinking |w_i| toward zero
(a factor in [0, 1] per instrument: no sign flips, no position opened or grown):
    1. clip each |w_i| to its cap;
    2. scale each class over its cap down to the cap (uniformly within the class);
    3. shrink positions, most correlated with the rest of the book first, until rho <= cap
       (closed-form factor per position, see `risk.kernels.shrink_correlation`);
    4. scale the whole book by c = min(1, G / gross, M / margin, V / VaR).
Why every limit holds at the end. The instrument, class, gross and margin measures are
monotone in each |w_i|: no later shrink can break them. Steps 3 and 4 shrink, so the caps of
steps 1 and 2 survive them. rho is a ratio of two forms homogeneous of degree 2, so step 4's
uniform scaling leaves it as step 3 left it. VaR is not monotone in each |w_i| (closing a
hedge can raise it), which is why it is enforced last, by the uniform scaling alone: gross,
margin and VaR are homogeneous of degree 1, so c * w has c times each, and c meets all three at
once. Idempotence: a limit binds only when its measure exceeds it by more than `RTOL` (1e-9,
relative; absolute for rho), every step is the identity on a book within its limit, and the
output is within every limit, so a second pass returns it bit for bit. The correlation step
checks its result recomputed from scratch, the way the next pass will.

Input: an env whose targets hold NaN, infinity or a weight over 1e6 times equity, or whose
covariance holds NaN or infinity, gets zero weights and is flagged in the report
(`invalid_target`, `invalid_covariance`); an env not allowed to trade (the kill switch) gets zero
weights (`halted`). Wrong shapes and negative variances raise. The guarantees are tested for
books whose nonzero weights lie between 1e-13 and 3 times equity; weights some 150 orders of
magnitude below the largest reach floating-point underflow, and the limits then hold only to
that precision. The covariance must be symmetric (not checked per call); if estimation leaves
it slightly indefinite, a negative w' S w counts as zero variance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from risk import kernels
from risk.kernels import LIMIT_NAMES
from risk.limits import RiskLimits


@dataclass(frozen=True)
class OverlayReport:
    """What the overlay did to each env of a batch; columns of the (E, 6) arrays follow
    `LIMIT_NAMES` (instrument, asset_class, correlation, gross, margin, var)."""

    bound: np.ndarray                  # (E, 6) bool, the limit's step shrank the book
    target_utilisation: np.ndarray     # (E, 6) measure / limit of the targets (> 1: broken)
    executed_utilisation: np.ndarray   # (E, 6) the same of the executed weights (<= 1 + RTOL)
    gross_target: np.ndarray           # (E,) sum |target|
    gross_executed: np.ndarray         # (E,) sum |executed|
    halted: np.ndarray                 # (E,) bool, held flat by the kill switch
    invalid_target: np.ndarray         # (E,) bool, NaN or infinite target: zero weights
    invalid_covariance: np.ndarray     # (E,) bool, NaN or infinite covariance: zero weights

    def binding_limits(self, env: int) -> tuple[str, ...]:
        """Names of the limits that shrank env `env`'s book."""
        return tuple(name for name, hit in zip(LIMIT_NAMES, self.bound[env], strict=True) if hit)

    def bound_counts(self) -> dict[str, int]:
        """In how many envs each limit bound."""
        return dict(zip(LIMIT_NAMES, self.bound.sum(axis=0).tolist(), strict=True))


class RiskOverlay:
    """The limits of `limits` for one universe: instruments' asset classes `class_index` (N,)
    indexing `class_names`, and `symbols` (N,) for per-instrument cap overrides."""

    def __init__(self, limits: RiskLimits, class_index: np.ndarray, class_names: Sequence[str],
                 symbols: Sequence[str] | None = None) -> None:
        limits.check()
        self.limits = limits
        self.class_index = np.ascontiguousarray(class_index, dtype=np.int64)     # (N,)
        if self.class_index.ndim != 1 or self.class_index.size == 0:
            raise ValueError(f"class_index must be a non-empty (N,) array, got shape "
                             f"{self.class_index.shape}")
        n = self.class_index.shape[0]
        self.class_names = tuple(class_names)
        if self.class_index.min() < 0 or self.class_index.max() >= len(self.class_names):
            raise ValueError(f"class_index must lie in [0, {len(self.class_names)}) to index "
                             f"class_names {self.class_names}")
        self.symbols = tuple(symbols) if symbols is not None else tuple(f"#{i}" for i in range(n))
        if len(self.symbols) != n:
            raise ValueError(f"{len(self.symbols)} symbols for {n} instruments")
        self.n_instruments = n
        self.kernel_limits = kernels.KernelLimits(
            class_index=self.class_index,
            instrument_caps=limits.instrument_cap_array(self.symbols),
            class_caps=limits.class_caps(self.class_names),
            margin_rates=limits.margin_rate_array(self.class_names)[self.class_index],
            max_gross=float(limits.max_gross_leverage), max_margin=float(limits.max_margin_usage),
            var_multiplier=limits.var_multiplier(), max_var=float(limits.max_var),
            max_correlation=float(limits.max_correlation_exposure))

    @classmethod
    def for_universe(cls, limits: RiskLimits, symbols: Sequence[str],
                     asset_classes: Sequence[str]) -> RiskOverlay:
        """The overlay of a universe given each instrument's symbol and asset-class name."""
        class_names = tuple(dict.fromkeys(asset_classes))
        index = np.array([class_names.index(c) for c in asset_classes], dtype=np.int64)
        return cls(limits, index, class_names, symbols)

    def apply(self, target_weights: np.ndarray, covariance: np.ndarray,
              trading_allowed: np.ndarray | None = None) -> tuple[np.ndarray, OverlayReport]:
        """Executed weights (E, N) and the report, for targets (E, N), a covariance of one bar's
        returns (N, N) shared by all envs or (E, N, N) per env, and the kill switch's mask (E,)
        (all allowed when left out)."""
        targets = np.ascontiguousarray(target_weights, dtype=np.float64)
        N = self.n_instruments
        if targets.ndim != 2 or targets.shape[1] != N:
            raise ValueError(f"target weights have shape {targets.shape}, expected (E, {N})")
        E = targets.shape[0]
        cov = np.ascontiguousarray(covariance, dtype=np.float64)
        if cov.ndim == 2:
            cov = cov[None]
        if cov.ndim != 3 or cov.shape[1:] != (N, N) or cov.shape[0] not in (1, E):
            raise ValueError(f"covariance has shape {np.shape(covariance)}, expected ({N}, {N}) "
                             f"or ({E}, {N}, {N})")
        negative = np.diagonal(cov, axis1=1, axis2=2) < 0.0                      # (1 or E, N)
        if negative.any():
            c, i = np.argwhere(negative)[0]
            raise ValueError(f"covariance[{c}] gives {self.symbols[i]} the negative variance "
                             f"{cov[c, i, i]}")
        allowed = np.ones(E, dtype=np.bool_) if trading_allowed is None \
            else np.asarray(trading_allowed, dtype=np.bool_)
        if allowed.shape != (E,):
            raise ValueError(f"trading_allowed has shape {allowed.shape}, expected ({E},)")
        executed = np.empty((E, N))
        K = len(LIMIT_NAMES)
        bound = np.empty((E, K), dtype=np.bool_)
        target_utilisation, executed_utilisation = np.empty((E, K)), np.empty((E, K))
        invalid_target, invalid_covariance = np.empty(E, np.bool_), np.empty(E, np.bool_)
        kernels.overlay_batch(targets, cov, allowed, self.kernel_limits, executed, bound,
                              target_utilisation, executed_utilisation, invalid_target,
                              invalid_covariance)
        report = OverlayReport(
            bound=bound, target_utilisation=target_utilisation,
            executed_utilisation=executed_utilisation,
            gross_target=np.where(invalid_target, np.nan, np.abs(targets).sum(axis=1)),
            gross_executed=np.abs(executed).sum(axis=1), halted=~allowed,
            invalid_target=invalid_target, invalid_covariance=invalid_covariance)
        return executed, report
