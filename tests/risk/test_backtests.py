"""Kupiec and Christoffersen statistics against hand-computed examples."""

import math

import numpy as np
import pytest

from risk.backtests import (
    backtest_var,
    christoffersen_test,
    conditional_coverage_test,
    kupiec_test,
    transition_counts,
    var_exceptions,
)


def chi2_1_sf(x: float) -> float:
    return math.erfc(math.sqrt(x / 2))


def test_kupiec_on_ten_exceptions_in_250_days_of_a_99_percent_var():
    # LR = -2 [240 ln 0.99 + 10 ln 0.01 - 240 ln 0.96 - 10 ln 0.04]
    #    = -2 [(-2.41208 - 46.05170) - (-9.79728 - 32.18876)] = 12.9555
    hits = np.zeros(250, dtype=bool)
    hits[::25] = True
    test = kupiec_test(hits, 0.99)
    assert test.statistic == pytest.approx(12.9555, abs=1e-4)
    assert test.p_value == pytest.approx(chi2_1_sf(12.955491), rel=1e-6)
    assert test.p_value < 0.001 and test.dof == 1


def test_kupiec_at_the_expected_rate_is_zero_and_without_exceptions_is_finite():
    hits = np.zeros(100, dtype=bool)
    hits[:5] = True
    assert kupiec_test(hits, 0.95).statistic == pytest.approx(0.0, abs=1e-12)
    assert kupiec_test(hits, 0.95).p_value == pytest.approx(1.0)
    none = kupiec_test(np.zeros(100, dtype=bool), 0.99)
    assert none.statistic == pytest.approx(-200 * math.log(0.99))


def test_christoffersen_independence_on_a_clustered_sequence():
    hits = np.array([0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    # transitions 01 11 11 10 00 00 00 01 11 10 00: n00 = 4, n01 = 2, n10 = 2, n11 = 3
    assert transition_counts(hits) == (4, 2, 2, 3)
    # pi01 = 1/3, pi11 = 3/5, pi = 5/11:
    # LR = -2 [5 ln(5/11) + 6 ln(6/11) - 4 ln(2/3) - 2 ln(1/3) - 2 ln(2/5) - 3 ln(3/5)] = 0.78992
    test = christoffersen_test(hits)
    assert test.statistic == pytest.approx(0.78992, abs=1e-5)
    assert test.p_value == pytest.approx(chi2_1_sf(test.statistic), rel=1e-9)


def test_independence_is_zero_when_the_exception_rate_does_not_depend_on_yesterday():
    # n00 = 4, n01 = 2, n10 = 2, n11 = 1: pi01 = pi11 = pi = 1/3
    hits = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
    assert christoffersen_test(hits).statistic == pytest.approx(0.0, abs=1e-12)
    assert christoffersen_test(np.zeros(50, dtype=bool)).statistic == 0.0


def test_conditional_coverage_is_kupiec_on_the_transitions_plus_independence():
    hits = np.random.default_rng(4).random(500) < 0.08
    joint = conditional_coverage_test(hits, 0.95)
    parts = kupiec_test(hits[1:], 0.95).statistic + christoffersen_test(hits).statistic
    assert joint.statistic == pytest.approx(parts, rel=1e-12)
    assert joint.dof == 2 and joint.p_value == pytest.approx(math.exp(-joint.statistic / 2))


def test_backtest_counts_losses_beyond_the_var_and_rarely_rejects_a_correct_var():
    rng = np.random.default_rng(9)
    var = np.full(1000, 1.6448536 * 0.01)
    rejections = 0
    for _ in range(100):
        returns = rng.normal(0, 0.01, 1000)
        result = backtest_var(returns, var, 0.95)
        assert result.n_exceptions == int((returns < -var).sum())
        rejections += result.conditional_coverage.p_value < 0.05
    assert rejections <= 12                                 # about 5 expected
    hits = var_exceptions(np.array([-0.02, -0.01]), np.array([0.015, 0.015]))
    np.testing.assert_array_equal(hits, [True, False])


def test_exceptions_must_be_a_boolean_series():
    with pytest.raises(ValueError, match="1-D bool"):
        kupiec_test(np.array([0, 1, 0]), 0.99)
    with pytest.raises(ValueError, match=r"\(T,\)"):
        var_exceptions(np.zeros(3), np.zeros(4))
