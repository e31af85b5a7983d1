"""VaR and CVaR (expected shortfall) of one return series, by four methods.

Conventions: `returns` is a 1-D series of simple per-bar returns; `confidence` is the VaR level
(0.95 for the 95 % VaR); VaR and CVaR are positive losses over one bar, fractions of equity.
    normal          mean and sample standard deviation (ddof = 1)
    student_t       location, scale and degrees of freedom fitted by maximum likelihood (scipy)
    cornish_fisher  mean, standard deviation (ddof = 1), and the bias-corrected sample skewness
                    and excess kurtosis (scipy's `bias=False`)
    historical      VaR is minus the (1 - confidence) quantile with numpy's linear interpolation
                    (`np.quantile(..., method="linear")`, Hyndman-Fan type 7); CVaR minus the mean
                    of the returns at or below that quantile (the convention of `eval.metrics`)
For a portfolio with a return history R (T, N), pass the series R @ w; for a portfolio known
only by its covariance, see `risk.portfolio`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from risk import tails


@dataclass(frozen=True)
class TailRisk:
    """VaR and CVaR at one confidence level, as positive losses."""

    var: float
    cvar: float


def as_series(returns: np.ndarray, minimum: int = 2) -> np.ndarray:
    """The returns as a finite 1-D float64 array of at least `minimum` bars, or a ValueError."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.shape[0] < minimum:
        raise ValueError(f"returns must be 1-D with at least {minimum} bars, got shape {r.shape}")
    if not np.isfinite(r).all():
        bad = int(np.argmin(np.isfinite(r)))
        raise ValueError(f"returns[{bad}] is {r[bad]}: returns must be finite")
    return r


def location_scale(mean: float, scale: float, multipliers: tuple[float, float]) -> TailRisk:
    """VaR = -mean + scale * k_var and CVaR = -mean + scale * k_cvar."""
    k_var, k_cvar = multipliers
    return TailRisk(var=-mean + scale * k_var, cvar=-mean + scale * k_cvar)


def normal_var(returns: np.ndarray, confidence: float = 0.95) -> TailRisk:
    r = as_series(returns)
    return location_scale(r.mean(), r.std(ddof=1), tails.normal_multipliers(confidence))


def fit_student_t(returns: np.ndarray) -> tuple[float, float, float]:
    """(dof, location, scale) of a Student-t fitted by maximum likelihood."""
    r = as_series(returns, minimum=4)
    dof, location, scale = stats.t.fit(r)
    return float(dof), float(location), float(scale)


def student_t_var(returns: np.ndarray, confidence: float = 0.95) -> TailRisk:
    dof, location, scale = fit_student_t(returns)
    return location_scale(location, scale, tails.student_t_multipliers(confidence, dof))


def cornish_fisher_var(returns: np.ndarray, confidence: float = 0.95) -> TailRisk:
    r = as_series(returns, minimum=4)
    skewness = float(stats.skew(r, bias=False))
    excess_kurtosis = float(stats.kurtosis(r, fisher=True, bias=False))
    return location_scale(r.mean(), r.std(ddof=1),
                          tails.cornish_fisher_multipliers(confidence, skewness, excess_kurtosis))


def historical_var(returns: np.ndarray, confidence: float = 0.95) -> TailRisk:
    tails.check_confidence(confidence)
    r = as_series(returns, minimum=1)
    cutoff = np.quantile(r, 1.0 - confidence, method="linear")
    return TailRisk(var=float(-cutoff), cvar=float(-r[r <= cutoff].mean()))
