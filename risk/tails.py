"""Tail multipliers: the VaR and CVaR of a standardised return distribution, in closed form.

Every parametric estimator in `risk` is location-scale: returns r = mu + s * x with x standardised,
so that
    VaR = -mu + s * k_var,    CVaR = -mu + s * k_cvar,
where k_var is minus the (1 - confidence) quantile of x and k_cvar minus the mean of x at or
below that quantile. VaR and CVaR are losses: positive numbers, fractions of equity.
"""

from __future__ import annotations

import math

from scipy import special

SQRT_2PI = math.sqrt(2.0 * math.pi)


def check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence} must lie strictly between 0 and 1")


def normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / SQRT_2PI


def normal_multipliers(confidence: float) -> tuple[float, float]:
    """(k_var, k_cvar) of the standard normal: z and phi(z) / (1 - confidence)."""
    check_confidence(confidence)
    z = float(special.ndtri(confidence))
    return z, normal_pdf(z) / (1.0 - confidence)


def student_t_multipliers(confidence: float, dof: float) -> tuple[float, float]:
    """(k_var, k_cvar) of the standard Student-t with `dof` degrees of freedom (unit scale, not
    unit variance): q = t_dof^{-1}(confidence) and f(q) (dof + q^2) / ((dof - 1)(1 - confidence)).
    The CVaR is infinite for dof <= 1."""
    check_confidence(confidence)
    if not dof > 0.0:
        raise ValueError(f"Student-t degrees of freedom must be > 0, got {dof}")
    q = float(special.stdtrit(dof, confidence))
    if dof <= 1.0:
        return q, math.inf
    log_density = (special.gammaln((dof + 1.0) / 2.0) - special.gammaln(dof / 2.0)
                   - 0.5 * math.log(dof * math.pi) - (dof + 1.0) / 2.0 * math.log1p(q * q / dof))
    return q, math.exp(log_density) * (dof + q * q) / ((dof - 1.0) * (1.0 - confidence))


def student_t_scale(volatility: float, dof: float) -> float:
    """The scale of a Student-t with `dof` > 2 whose standard deviation is `volatility`."""
    if not dof > 2.0:
        raise ValueError(f"a Student-t has finite variance only for dof > 2, got {dof}")
    return volatility * math.sqrt((dof - 2.0) / dof)


def cornish_fisher_multipliers(confidence: float, skewness: float,
                               excess_kurtosis: float) -> tuple[float, float]:
    """(k_var, k_cvar) of the Cornish-Fisher expansion around the normal.

    The quantile at tail probability p = 1 - confidence is z_cf(x) at x = Phi^{-1}(p), with
        z_cf(x) = x + (x^2 - 1) S / 6 + (x^3 - 3x) K / 24 - (2x^3 - 5x) S^2 / 36
    (S skewness, K excess kurtosis). The CVaR is the exact mean of z_cf over the tail,
    (1/p) int_{-inf}^{x} z_cf(t) phi(t) dt, from the normal's partial moments
        I0 = p, I1 = -phi(x), I2 = p - x phi(x), I3 = -(x^2 + 2) phi(x).
    The expansion is a monotone quantile function only for moderate S and K (roughly
    |S| < 1 and 0 <= K < 6); outside that range its figures mean little.
    """
    check_confidence(confidence)
    p = 1.0 - confidence
    x = float(special.ndtri(p))
    s, k = skewness, excess_kurtosis
    quantile = x + (x * x - 1.0) * s / 6.0 + (x ** 3 - 3.0 * x) * k / 24.0 \
        - (2.0 * x ** 3 - 5.0 * x) * s * s / 36.0
    phi = normal_pdf(x)
    i0, i1, i2, i3 = p, -phi, p - x * phi, -(x * x + 2.0) * phi
    tail_sum = i1 + (i2 - i0) * s / 6.0 + (i3 - 3.0 * i1) * k / 24.0 \
        - (2.0 * i3 - 5.0 * i1) * s * s / 36.0
    return -quantile, -tail_sum / p


DISTRIBUTIONS: tuple[str, ...] = ("normal", "student_t")


def volatility_multipliers(confidence: float, distribution: str = "normal",
                           dof: float = 5.0) -> tuple[float, float]:
    """(k_var, k_cvar) per unit standard deviation of a zero-mean normal or Student-t (`dof` > 2,
    scaled to that standard deviation), so VaR = -mu + k_var * sigma."""
    if distribution == "normal":
        return normal_multipliers(confidence)
    if distribution == "student_t":
        k_var, k_cvar = student_t_multipliers(confidence, dof)
        unit = student_t_scale(1.0, dof)
        return k_var * unit, k_cvar * unit
    raise ValueError(f"distribution='{distribution}' is not one of {DISTRIBUTIONS}")
