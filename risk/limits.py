"""`RiskLimits`: the hard portfolio limits, one plain dataclass (the `risk/` config group).

All exposures are fractions of equity; `math.inf` switches a cap off, 0 allows nothing, and
a cap in between must be at least `MIN_LIMIT` (1e-6), which keeps the overlay's arithmetic
clear of underflow. The array methods turn the
limits into per-instrument and per-class arrays for a universe, the form the overlay kernel reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from risk import tails
from risk.kernels import MIN_LIMIT


def _default_margin_rates() -> dict[str, float]:
    # initial margin per unit of notional, as in `envs.costs`: FX at 30:1, gold and crude at
    # exchange-style 10 %, index CFDs at 20:1, single stocks Reg T 50 %
    return {"fx": 0.0333, "commodity": 0.10, "equity_index": 0.05, "equity": 0.50}


@dataclass
class RiskLimits:
    """Portfolio limits the overlay enforces on every step, and the drawdown kill switch."""

    # one-bar (daily) parametric VaR of the executed weights, zero mean
    max_var: float = 0.02
    var_confidence: float = 0.95
    var_distribution: str = "normal"         # "normal" | "student_t"
    var_dof: float = 5.0                     # degrees of freedom of "student_t" (> 2)
    # exposure-weighted average correlation between positions (see `risk.overlay`), in (0, 1]
    max_correlation_exposure: float = 0.7
    # gross leverage sum |w_i|
    max_gross_leverage: float = 2.0
    # gross exposure of one asset class, as a share of max_gross_leverage (see `class_caps`)
    max_class_share: float = 0.4
    class_shares: dict[str, float] = field(default_factory=dict)       # class -> share override
    # |w_i| of one instrument
    max_instrument_weight: float = 1.0
    instrument_caps: dict[str, float] = field(default_factory=dict)    # symbol -> cap override
    # initial margin sum_i rate_class(i) |w_i| may use at most this fraction of equity
    max_margin_usage: float = 0.5
    margin_rates: dict[str, float] = field(default_factory=_default_margin_rates)
    # kill switch: flatten when the drawdown from the peak exceeds this, then stay flat this
    # many bars
    max_drawdown: float = 0.15
    kill_switch_cooldown: int = 20

    def check(self) -> None:
        """Raise ValueError naming the key of any limit out of its domain."""
        caps = {"max_var": self.max_var, "max_gross_leverage": self.max_gross_leverage,
                "max_class_share": self.max_class_share,
                "max_instrument_weight": self.max_instrument_weight,
                "max_margin_usage": self.max_margin_usage,
                **{f"class_shares.{k}": v for k, v in self.class_shares.items()},
                **{f"instrument_caps.{k}": v for k, v in self.instrument_caps.items()}}
        for key, value in caps.items():
            if not (value == 0.0 or MIN_LIMIT <= value):             # False for NaN
                raise ValueError(f"risk.{key}={value} must be 0 or at least {MIN_LIMIT} "
                                 f"(inf switches it off)")
        for key, value in self.margin_rates.items():
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"risk.margin_rates.{key}={value} must be finite and >= 0")
        if not 0.0 < self.max_correlation_exposure <= 1.0:
            raise ValueError(f"risk.max_correlation_exposure={self.max_correlation_exposure} "
                             f"must lie in (0, 1]")
        if not 0.5 <= self.var_confidence < 1.0:
            raise ValueError(f"risk.var_confidence={self.var_confidence} must lie in [0.5, 1)")
        if self.var_distribution not in tails.DISTRIBUTIONS:
            raise ValueError(f"risk.var_distribution='{self.var_distribution}' is not one of "
                             f"{tails.DISTRIBUTIONS}")
        if self.var_distribution == "student_t" and not self.var_dof > 2.0:
            raise ValueError(f"risk.var_dof={self.var_dof} must be > 2")
        if not 0.0 < self.max_drawdown <= 1.0:
            raise ValueError(f"risk.max_drawdown={self.max_drawdown} must lie in (0, 1]")
        if self.kill_switch_cooldown < 0:
            raise ValueError(f"risk.kill_switch_cooldown={self.kill_switch_cooldown} must be >= 0")

    def var_multiplier(self) -> float:
        """k with VaR = k * sqrt(w' S w) for the configured distribution and confidence."""
        return tails.volatility_multipliers(self.var_confidence, self.var_distribution,
                                            self.var_dof)[0]

    def instrument_cap_array(self, symbols: Sequence[str]) -> np.ndarray:
        """(N,) cap on |w_i|: the default, or the symbol's override."""
        unknown = sorted(set(self.instrument_caps) - set(symbols))
        if unknown:
            raise KeyError(f"risk.instrument_caps names {unknown}, not in the universe "
                           f"{list(symbols)}")
        return np.array([self.instrument_caps.get(s, self.max_instrument_weight) for s in symbols],
                        dtype=np.float64)

    def class_caps(self, class_names: Sequence[str]) -> np.ndarray:
        """(K,) cap on each class's gross exposure: share * max_gross_leverage.

        The share is of the gross-leverage limit, not of the book's own gross: a share of the
        book's gross is unchanged by shrinking a one-class book, so a shrink-only overlay could
        meet it only by flattening every book that holds fewer than 1 / share classes."""
        unknown = sorted(set(self.class_shares) - set(class_names))
        if unknown:
            raise KeyError(f"risk.class_shares names {unknown}, not among the classes "
                           f"{list(class_names)}")
        shares = np.array([self.class_shares.get(c, self.max_class_share) for c in class_names],
                          dtype=np.float64)
        if self.max_gross_leverage == 0.0:
            return np.zeros_like(shares)
        with np.errstate(invalid="ignore"):                 # a zero share of an infinite gross
            return np.where(shares == 0.0, 0.0, shares * self.max_gross_leverage)

    def margin_rate_array(self, class_names: Sequence[str]) -> np.ndarray:
        """(K,) initial margin rate of each class."""
        missing = [c for c in class_names if c not in self.margin_rates]
        if missing:
            raise KeyError(f"risk.margin_rates has no rate for the classes {missing} "
                           f"(it has {sorted(self.margin_rates)})")
        return np.array([self.margin_rates[c] for c in class_names], dtype=np.float64)
