"""Each VaR/CVaR estimator against a closed form or scipy/numpy on the same data."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from risk import tails
from risk.var import cornish_fisher_var, fit_student_t, historical_var, normal_var, student_t_var


@pytest.fixture(scope="module")
def fat_tailed():
    return np.random.default_rng(7).standard_t(4, size=4000) * 0.01 + 0.0003


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_normal_var_is_the_closed_form_on_sample_moments(fat_tailed, confidence):
    mu, sigma = fat_tailed.mean(), fat_tailed.std(ddof=1)
    z = stats.norm.ppf(confidence)
    risk = normal_var(fat_tailed, confidence)
    assert risk.var == pytest.approx(-mu + sigma * z, rel=1e-12)
    assert risk.cvar == pytest.approx(-mu + sigma * stats.norm.pdf(z) / (1 - confidence), rel=1e-12)


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_student_t_var_matches_scipy_on_the_fitted_distribution(fat_tailed, confidence):
    dof, loc, scale = fit_student_t(fat_tailed)
    assert 3.0 < dof < 5.5                                  # drawn with 4 degrees of freedom
    fitted = stats.t(dof, loc, scale)
    cutoff = fitted.ppf(1 - confidence)
    risk = student_t_var(fat_tailed, confidence)
    assert risk.var == pytest.approx(-cutoff, rel=1e-10)
    tail_mean = fitted.expect(lambda x: x, ub=cutoff, conditional=True)
    assert risk.cvar == pytest.approx(-tail_mean, rel=1e-6)


def test_student_t_multipliers_match_scipy_and_cvar_diverges_at_one_dof():
    for dof in (1.5, 3.0, 30.0):
        k_var, k_cvar = tails.student_t_multipliers(0.975, dof)
        assert k_var == pytest.approx(stats.t.ppf(0.975, dof), rel=1e-12)
        q = -k_var
        assert k_cvar == pytest.approx(-stats.t(dof).expect(lambda x: x, ub=q, conditional=True),
                                       rel=1e-6)
    assert tails.student_t_multipliers(0.95, 1.0)[1] == math.inf


def test_volatility_multipliers_scale_the_student_t_to_unit_variance():
    k_var, _ = tails.volatility_multipliers(0.99, "student_t", 5.0)
    assert k_var == pytest.approx(stats.t(5.0, scale=math.sqrt(3 / 5)).ppf(0.99), rel=1e-12)
    assert tails.volatility_multipliers(0.99, "normal") == tails.normal_multipliers(0.99)
    with pytest.raises(ValueError, match="distribution='cauchy'"):
        tails.volatility_multipliers(0.99, "cauchy")


def cornish_fisher_quantile(x: float, s: float, k: float) -> float:
    return x + (x**2 - 1) * s / 6 + (x**3 - 3 * x) * k / 24 - (2 * x**3 - 5 * x) * s**2 / 36


@pytest.mark.parametrize(("skewness", "kurtosis"), [(0.0, 0.0), (-0.6, 3.0), (0.4, 1.5)])
def test_cornish_fisher_multipliers_are_the_expansion_and_its_exact_tail_mean(skewness, kurtosis):
    confidence = 0.99
    p = 1 - confidence
    k_var, k_cvar = tails.cornish_fisher_multipliers(confidence, skewness, kurtosis)
    assert k_var == pytest.approx(-cornish_fisher_quantile(stats.norm.ppf(p), skewness, kurtosis))
    def quantile(u: float) -> float:
        return cornish_fisher_quantile(stats.norm.ppf(u), skewness, kurtosis)

    tail, _ = integrate.quad(quantile, 0, p, epsabs=1e-13, limit=200)
    assert k_cvar == pytest.approx(-tail / p, rel=1e-8)
    if skewness == kurtosis == 0:
        assert (k_var, k_cvar) == pytest.approx(tails.normal_multipliers(confidence), rel=1e-12)


def test_cornish_fisher_var_uses_the_bias_corrected_sample_moments(fat_tailed):
    s = stats.skew(fat_tailed, bias=False)
    k = stats.kurtosis(fat_tailed, bias=False)
    z = cornish_fisher_quantile(stats.norm.ppf(0.05), s, k)
    expected = -(fat_tailed.mean() + fat_tailed.std(ddof=1) * z)
    assert cornish_fisher_var(fat_tailed, 0.95).var == pytest.approx(expected, rel=1e-12)


def test_historical_var_interpolates_linearly_between_order_statistics():
    r = np.random.default_rng(3).normal(0, 0.01, 100)
    x = np.sort(r)
    # numpy's linear method: position (n - 1) p = 99 * 0.05 = 4.95 between x[4] and x[5]
    cutoff = x[4] + 0.95 * (x[5] - x[4])
    risk = historical_var(r, 0.95)
    assert risk.var == pytest.approx(-cutoff, rel=1e-12)
    assert risk.var == pytest.approx(-np.quantile(r, 0.05, method="linear"), rel=1e-15)
    assert risk.cvar == pytest.approx(-x[:5].mean(), rel=1e-12)      # the returns <= the cutoff


def test_bad_series_and_levels_raise_naming_the_problem():
    r = np.array([0.01, -0.02, np.nan, 0.0])
    with pytest.raises(ValueError, match=r"returns\[2\] is nan"):
        normal_var(r)
    with pytest.raises(ValueError, match="confidence=1.0"):
        historical_var(np.zeros(5), 1.0)
    with pytest.raises(ValueError, match="1-D"):
        cornish_fisher_var(np.zeros((5, 2)))
