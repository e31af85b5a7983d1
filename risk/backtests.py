"""VaR backtests: Kupiec's proportion of failures, Christoffersen's independence test and their
joint conditional-coverage test, each a likelihood ratio with a chi-square p-value.

An exception (a failure) is a bar whose loss exceeds the VaR forecast made for it:
r_t < -VaR_t. At the right coverage exceptions occur with probability p = 1 - confidence,
independently from bar to bar. `0 * log 0` is taken as 0 throughout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from risk import tails


@dataclass(frozen=True)
class LikelihoodRatioTest:
    statistic: float
    p_value: float
    dof: int


@dataclass(frozen=True)
class VaRBacktest:
    """The three tests on one series of exceptions."""

    n_bars: int
    n_exceptions: int
    expected_rate: float        # 1 - confidence
    kupiec: LikelihoodRatioTest
    independence: LikelihoodRatioTest
    conditional_coverage: LikelihoodRatioTest


def var_exceptions(returns: np.ndarray, var: np.ndarray) -> np.ndarray:
    """(T,) bool, True where the return lost more than the VaR forecast for that bar."""
    r, v = np.asarray(returns, dtype=np.float64), np.asarray(var, dtype=np.float64)
    if r.ndim != 1 or v.shape != r.shape:
        raise ValueError(f"returns {r.shape} and VaR forecasts {v.shape} must both be (T,)")
    if not (np.isfinite(r).all() and np.isfinite(v).all()):
        raise ValueError("returns and VaR forecasts must be finite")
    return r < -v


def as_exceptions(exceptions: np.ndarray, minimum: int) -> np.ndarray:
    hits = np.asarray(exceptions)
    if hits.dtype != np.bool_ or hits.ndim != 1 or hits.shape[0] < minimum:
        raise ValueError(f"exceptions must be a 1-D bool array of at least {minimum} bars, "
                         f"got {hits.dtype} {hits.shape}")
    return hits


def bernoulli_log_likelihood(failures: float, successes: float, rate: float) -> float:
    """log(rate^failures (1 - rate)^successes)."""
    return float(special.xlogy(failures, rate) + special.xlog1py(successes, -rate))


def chi2_test(statistic: float, dof: int) -> LikelihoodRatioTest:
    statistic = max(statistic, 0.0)            # rounding can leave -1e-16 for a perfect fit
    return LikelihoodRatioTest(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def kupiec_test(exceptions: np.ndarray, confidence: float) -> LikelihoodRatioTest:
    """Proportion of failures: x exceptions in n bars against the rate p = 1 - confidence,
        LR_pof = -2 [log L(p) - log L(x / n)]  ~  chi2(1)."""
    tails.check_confidence(confidence)
    hits = as_exceptions(exceptions, minimum=1)
    n, x = hits.shape[0], int(hits.sum())
    statistic = -2.0 * (bernoulli_log_likelihood(x, n - x, 1.0 - confidence)
                        - bernoulli_log_likelihood(x, n - x, x / n))
    return chi2_test(statistic, 1)


def transition_counts(hits: np.ndarray) -> tuple[int, int, int, int]:
    """(n00, n01, n10, n11): n_ij bars in state j after a bar in state i (1 = exception)."""
    before, after = hits[:-1], hits[1:]
    return (int((~before & ~after).sum()), int((~before & after).sum()),
            int((before & ~after).sum()), int((before & after).sum()))


def markov_log_likelihood(hits: np.ndarray) -> float:
    """Log-likelihood of the transitions under the fitted first-order Markov chain,
    pi_01 = n01 / (n00 + n01) and pi_11 = n11 / (n10 + n11)."""
    n00, n01, n10, n11 = transition_counts(hits)
    pi01 = n01 / (n00 + n01) if n00 + n01 else 0.0
    pi11 = n11 / (n10 + n11) if n10 + n11 else 0.0
    return bernoulli_log_likelihood(n01, n00, pi01) + bernoulli_log_likelihood(n11, n10, pi11)


def christoffersen_test(exceptions: np.ndarray) -> LikelihoodRatioTest:
    """Independence: the first-order Markov chain against one exception rate
    pi = (n01 + n11) / (n - 1) for every bar,
        LR_ind = -2 [log L(pi) - log L(pi_01, pi_11)]  ~  chi2(1)."""
    hits = as_exceptions(exceptions, minimum=2)
    n00, n01, n10, n11 = transition_counts(hits)
    pooled = (n01 + n11) / (hits.shape[0] - 1)
    statistic = -2.0 * (bernoulli_log_likelihood(n01 + n11, n00 + n10, pooled)
                        - markov_log_likelihood(hits))
    return chi2_test(statistic, 1)


def conditional_coverage_test(exceptions: np.ndarray, confidence: float) -> LikelihoodRatioTest:
    """Christoffersen's joint test of coverage and independence, on the n - 1 transitions:
        LR_cc = -2 [log L(p) - log L(pi_01, pi_11)]  ~  chi2(2),
    which equals Kupiec's LR_pof on bars 2..n plus LR_ind exactly."""
    tails.check_confidence(confidence)
    hits = as_exceptions(exceptions, minimum=2)
    n00, n01, n10, n11 = transition_counts(hits)
    statistic = -2.0 * (bernoulli_log_likelihood(n01 + n11, n00 + n10, 1.0 - confidence)
                        - markov_log_likelihood(hits))
    return chi2_test(statistic, 2)


def backtest_var(returns: np.ndarray, var: np.ndarray, confidence: float) -> VaRBacktest:
    """All three tests of the VaR forecasts `var` (T,) made for the bars of `returns` (T,)."""
    hits = var_exceptions(returns, var)
    return VaRBacktest(n_bars=hits.shape[0], n_exceptions=int(hits.sum()),
                       expected_rate=1.0 - confidence, kupiec=kupiec_test(hits, confidence),
                       independence=christoffersen_test(hits),
                       conditional_coverage=conditional_coverage_test(hits, confidence))
