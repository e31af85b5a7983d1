"""Portfolio VaR from a covariance: closed forms, Euler contributions, and Monte Carlo that
converges to the parametric figure."""

import math

import numpy as np
import pytest
from scipy import stats

from risk.portfolio import (
    covariance_root,
    monte_carlo_var,
    portfolio_var,
    risk_contributions,
    simulate_returns,
)


@pytest.fixture(scope="module")
def book():
    rng = np.random.default_rng(11)
    loadings = rng.normal(0, 0.008, (8, 3))
    cov = loadings @ loadings.T + np.diag(rng.uniform(1e-5, 1e-4, 8))
    weights = rng.uniform(-0.5, 0.5, 8)
    mean = rng.normal(0, 2e-4, 8)
    return weights, cov, mean


def test_normal_portfolio_var_is_z_sigma_minus_drift(book):
    w, cov, mu = book
    sigma = math.sqrt(w @ cov @ w)
    risk = portfolio_var(w, cov, 0.99, mean=mu)
    assert risk.var == pytest.approx(stats.norm.ppf(0.99) * sigma - mu @ w, rel=1e-12)
    tail = stats.norm(mu @ w, sigma).expect(lambda x: x, ub=-risk.var, conditional=True)
    assert risk.cvar == pytest.approx(-tail, rel=1e-7)


def test_student_t_portfolio_var_is_the_t_with_the_portfolio_variance(book):
    w, cov, mu = book
    sigma = math.sqrt(w @ cov @ w)
    dof = 4.0
    returns = stats.t(dof, loc=mu @ w, scale=sigma * math.sqrt((dof - 2) / dof))
    assert returns.std() == pytest.approx(sigma)
    risk = portfolio_var(w, cov, 0.975, "student_t", dof, mean=mu)
    assert risk.var == pytest.approx(-returns.ppf(0.025), rel=1e-12)
    tail = returns.expect(lambda x: x, ub=-risk.var, conditional=True)
    assert risk.cvar == pytest.approx(-tail, rel=1e-7)


@pytest.mark.parametrize("distribution", ["normal", "student_t"])
def test_component_var_adds_up_and_marginal_var_is_the_gradient(book, distribution):
    w, cov, mu = book
    total = portfolio_var(w, cov, 0.99, distribution, mean=mu)
    parts = risk_contributions(w, cov, 0.99, distribution, mean=mu)
    assert parts.component_var.sum() == pytest.approx(total.var, rel=1e-12)
    assert parts.component_cvar.sum() == pytest.approx(total.cvar, rel=1e-12)
    step = 1e-6
    for i in range(len(w)):
        bump = np.zeros_like(w)
        bump[i] = step
        slope = (portfolio_var(w + bump, cov, 0.99, distribution, mean=mu).var
                 - portfolio_var(w - bump, cov, 0.99, distribution, mean=mu).var) / (2 * step)
        assert parts.marginal_var[i] == pytest.approx(slope, rel=1e-6, abs=1e-10)


def test_a_flat_book_has_no_risk_and_no_contributions(book):
    _, cov, _ = book
    parts = risk_contributions(np.zeros(8), cov)
    assert portfolio_var(np.zeros(8), cov).var == 0.0
    np.testing.assert_array_equal(parts.component_var, np.zeros(8))


@pytest.mark.parametrize(("distribution", "density"), [
    ("normal", lambda q: stats.norm.pdf(q)),
    ("student_t", lambda q: stats.t(5.0, scale=math.sqrt(3 / 5)).pdf(q)),
])
def test_monte_carlo_var_converges_to_the_parametric_var(book, distribution, density):
    w, cov, mu = book
    sigma = math.sqrt(w @ cov @ w)
    exact = portfolio_var(w, cov, 0.95, distribution, 5.0, mu)
    p = 0.05
    k = (exact.var + mu @ w) / sigma                         # the standardised quantile
    for n in (10_000, 160_000):
        estimate = monte_carlo_var(w, cov, np.random.default_rng(n), 0.95, distribution, 5.0, mu,
                                   n_scenarios=n)
        # standard error of a sample quantile: sqrt(p (1 - p) / n) / f(q)
        standard_error = sigma * math.sqrt(p * (1 - p) / n) / density(k)
        assert abs(estimate.var - exact.var) < 4 * standard_error
        assert estimate.cvar == pytest.approx(exact.cvar, rel=0.06 if n == 10_000 else 0.02)


def test_monte_carlo_is_reproducible_from_its_seed(book):
    w, cov, _ = book
    first = monte_carlo_var(w, cov, np.random.default_rng(5), distribution="student_t")
    again = monte_carlo_var(w, cov, np.random.default_rng(5), distribution="student_t")
    assert first == again


@pytest.mark.parametrize("distribution", ["normal", "student_t"])
def test_simulated_returns_have_the_given_covariance_and_mean(book, distribution):
    _, cov, mu = book
    scenarios = simulate_returns(cov, 200_000, np.random.default_rng(1), distribution, 6.0, mu)
    np.testing.assert_allclose(np.cov(scenarios.T), cov, atol=0.03 * cov.diagonal().max())
    np.testing.assert_allclose(scenarios.mean(axis=0), mu, atol=5e-5)
    excess_kurtosis = stats.kurtosis(scenarios[:, 0])
    assert excess_kurtosis == pytest.approx(0.0 if distribution == "normal" else 3.0, abs=0.6)


def test_covariance_root_accepts_singular_and_rejects_indefinite_matrices():
    singular = np.array([[1.0, 1.0], [1.0, 1.0]]) * 1e-4
    root = covariance_root(singular)
    np.testing.assert_allclose(root @ root.T, singular, atol=1e-18)
    with pytest.raises(ValueError, match="not positive semi-definite"):
        covariance_root(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="not symmetric"):
        covariance_root(np.array([[1.0, 0.5], [0.0, 1.0]]))


def test_mismatched_or_non_finite_inputs_raise():
    with pytest.raises(ValueError, match=r"must be \(N,\), \(N, N\) and \(N,\)"):
        portfolio_var(np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="covariance contain NaN"):
        portfolio_var(np.zeros(2), np.full((2, 2), np.nan))
