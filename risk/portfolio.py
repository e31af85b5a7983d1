"""VaR and CVaR of a weighted portfolio known by its return covariance: parametric (normal or
Student-t), Euler risk contributions, and Monte Carlo.

`weights` (N,) are signed notionals as fractions of equity, `covariance` (N, N) the covariance of
one bar's returns, `mean` (N,) their expected returns (zero when left out: over one bar the mean
is small against the volatility, and leaving it out is conservative for long-biased books). The
portfolio return is then w'r with volatility sigma_p = sqrt(w' S w), and
    VaR = k_var * sigma_p - mu'w,    CVaR = k_cvar * sigma_p - mu'w
with the multipliers of `risk.tails.volatility_multipliers`. Both are homogeneous of degree one
in w, so Euler's theorem splits them exactly into per-instrument contributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from risk import tails
from risk.var import TailRisk, historical_var


def check_portfolio(weights: np.ndarray, covariance: np.ndarray,
                    mean: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (N,), covariance (N, N) and mean (N,) as finite float64 arrays, or a ValueError."""
    w = np.asarray(weights, dtype=np.float64)
    cov = np.asarray(covariance, dtype=np.float64)
    mu = np.zeros_like(w) if mean is None else np.asarray(mean, dtype=np.float64)
    if w.ndim != 1 or cov.shape != (w.shape[0], w.shape[0]) or mu.shape != w.shape:
        raise ValueError(f"weights {w.shape}, covariance {cov.shape} and mean {mu.shape} must be "
                         f"(N,), (N, N) and (N,)")
    for name, values in (("weights", w), ("covariance", cov), ("mean", mu)):
        if not np.isfinite(values).all():
            raise ValueError(f"{name} contain NaN or infinite values")
    return w, cov, mu


def portfolio_var(weights: np.ndarray, covariance: np.ndarray, confidence: float = 0.95,
                  distribution: str = "normal", dof: float = 5.0,
                  mean: np.ndarray | None = None) -> TailRisk:
    """Parametric VaR and CVaR of one portfolio (normal, or Student-t with `dof` > 2)."""
    w, cov, mu = check_portfolio(weights, covariance, mean)
    volatility = math.sqrt(max(float(w @ cov @ w), 0.0))
    k_var, k_cvar = tails.volatility_multipliers(confidence, distribution, dof)
    drift = float(mu @ w)
    return TailRisk(var=k_var * volatility - drift, cvar=k_cvar * volatility - drift)


@dataclass(frozen=True)
class RiskContributions:
    """Euler allocation of parametric VaR and CVaR: component_i = w_i * marginal_i, and the
    components add up to the portfolio's VaR (CVaR) exactly."""

    marginal_var: np.ndarray      # (N,) dVaR / dw_i
    component_var: np.ndarray     # (N,)
    marginal_cvar: np.ndarray     # (N,) dCVaR / dw_i
    component_cvar: np.ndarray    # (N,)


def risk_contributions(weights: np.ndarray, covariance: np.ndarray, confidence: float = 0.95,
                       distribution: str = "normal", dof: float = 5.0,
                       mean: np.ndarray | None = None) -> RiskContributions:
    """Marginal and component VaR and CVaR: dVaR/dw = k_var * S w / sigma_p - mu.

    At sigma_p = 0 the volatility term has no gradient and contributes nothing."""
    w, cov, mu = check_portfolio(weights, covariance, mean)
    covariance_times_w = cov @ w                                            # (N,)
    volatility = math.sqrt(max(float(w @ covariance_times_w), 0.0))
    k_var, k_cvar = tails.volatility_multipliers(confidence, distribution, dof)
    unit = covariance_times_w / volatility if volatility > 0.0 else np.zeros_like(w)
    marginal_var = k_var * unit - mu
    marginal_cvar = k_cvar * unit - mu
    return RiskContributions(marginal_var=marginal_var, component_var=w * marginal_var,
                             marginal_cvar=marginal_cvar, component_cvar=w * marginal_cvar)


def covariance_root(covariance: np.ndarray) -> np.ndarray:
    """A matrix A (N, N) with A A' = covariance, by eigendecomposition, so singular covariances
    (positive semi-definite) work; a ValueError if the covariance is not symmetric PSD."""
    cov = np.asarray(covariance, dtype=np.float64)
    if not np.allclose(cov, cov.T, rtol=1e-10, atol=1e-14):
        raise ValueError("covariance is not symmetric")
    values, vectors = np.linalg.eigh(cov)
    if values.size and values[0] < -1e-10 * max(values[-1], 0.0):
        raise ValueError(f"covariance is not positive semi-definite (eigenvalue {values[0]:.3g})")
    return vectors * np.sqrt(np.clip(values, 0.0, None))


def simulate_returns(covariance: np.ndarray, n_scenarios: int, rng: np.random.Generator,
                     distribution: str = "normal", dof: float = 5.0,
                     mean: np.ndarray | None = None) -> np.ndarray:
    """(n_scenarios, N) one-bar returns from a multivariate normal, or a multivariate Student-t
    with `dof` > 2 scaled so that its covariance is `covariance`:
        r = mu + sqrt((dof - 2) / dof) * A z * sqrt(dof / g),  z ~ N(0, I), g ~ chi2(dof)."""
    if distribution not in tails.DISTRIBUTIONS:
        raise ValueError(f"distribution='{distribution}' is not one of {tails.DISTRIBUTIONS}")
    root = covariance_root(covariance)
    n = root.shape[0]
    mu = np.zeros(n) if mean is None else np.asarray(mean, dtype=np.float64)
    scenarios = rng.standard_normal((n_scenarios, n)) @ root.T                  # (S, N)
    if distribution == "student_t":
        mixing = np.sqrt(dof / rng.chisquare(dof, size=n_scenarios))             # (S,)
        scenarios *= tails.student_t_scale(1.0, dof) * mixing[:, None]
    return scenarios + mu


def monte_carlo_var(weights: np.ndarray, covariance: np.ndarray, rng: np.random.Generator,
                    confidence: float = 0.95, distribution: str = "normal", dof: float = 5.0,
                    mean: np.ndarray | None = None, n_scenarios: int = 10_000) -> TailRisk:
    """VaR and CVaR of the portfolio over `n_scenarios` simulated bars, estimated as in
    `risk.var.historical_var` (its sampling error: `risk.intervals.historical_var_interval` on
    the simulated portfolio returns)."""
    w, cov, mu = check_portfolio(weights, covariance, mean)
    scenarios = simulate_returns(cov, n_scenarios, rng, distribution, dof, mu)
    return historical_var(scenarios @ w, confidence)
