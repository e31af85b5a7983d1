"""Covariance estimators, PSD repair and the strided rolling summaries."""

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from features.covariance import (
    EWMACovariance,
    correlation_from_covariance,
    is_psd,
    make_estimator,
    nearest_psd,
    rolling_summaries,
    summarize,
)


@pytest.fixture(scope="module")
def returns() -> np.ndarray:
    rng = np.random.default_rng(3)
    factor = rng.standard_normal((400, 1))
    return 0.01 * (0.7 * factor + rng.standard_normal((400, 6)))   # (T, N)


def test_ledoit_wolf_summaries_match_scikit_learn_on_the_same_window(returns):
    window = 60
    rolled = rolling_summaries(returns, make_estimator("ledoit_wolf"), window, stride=1)
    for end in (59, 150, 399):
        expected = summarize(LedoitWolf().fit(returns[end - window + 1:end + 1]).covariance_)
        np.testing.assert_allclose(rolled[end], expected, rtol=1e-12)
    assert np.isnan(rolled[:window - 1]).all()


def test_summaries_of_known_matrices():
    identity = summarize(np.eye(4))
    np.testing.assert_allclose(identity, [0.0, 0.0, 0.25, 0.0], atol=1e-12)
    equicorrelated = np.full((3, 3), 0.5) + 0.5 * np.eye(3)         # eigenvalues 2, 0.5, 0.5
    np.testing.assert_allclose(summarize(equicorrelated), [0.5, 0.5, 2 / 3, np.log10(4)], rtol=1e-12)


def test_ewma_covariance_weights_recent_rows_by_halflife(returns):
    window = returns[:50]
    weights = 0.5 ** (np.arange(50)[::-1] / 10.0)
    expected = np.cov(window, rowvar=False, aweights=weights, bias=True)
    np.testing.assert_allclose(EWMACovariance(10.0).fit(window).covariance_, expected, rtol=1e-10)


def test_nearest_psd_repairs_an_indefinite_matrix():
    broken = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert not is_psd(broken)
    repaired = nearest_psd(broken)
    assert is_psd(repaired)
    assert np.allclose(repaired, repaired.T)
    assert np.linalg.norm(repaired - broken) < np.linalg.norm(np.eye(3) - broken)
    assert is_psd(correlation_from_covariance(nearest_psd(np.eye(3))))


@pytest.mark.parametrize("estimator", ["ledoit_wolf", "sample", "ewma"])
def test_strided_summaries_are_held_causally(returns, estimator):
    full = rolling_summaries(returns, make_estimator(estimator), 40, stride=5)
    assert (full[39:44] == full[39]).all() and not (full[44] == full[39]).all()
    for t in (45, 123, 260, 399):
        cut = rolling_summaries(returns[:t + 1], make_estimator(estimator), 40, stride=5)
        np.testing.assert_array_equal(full[:t + 1], cut)


def test_bad_inputs_raise_clear_errors(returns):
    with pytest.raises(ValueError, match="longer than the data"):
        rolling_summaries(returns[:30], make_estimator("sample"), 60)
    broken = returns.copy()
    broken[7, 2] = np.nan
    with pytest.raises(ValueError, match="row 7, column 2"):
        rolling_summaries(broken, make_estimator("sample"), 20)
    with pytest.raises(ValueError, match="unknown covariance estimator 'shrunk'"):
        make_estimator("shrunk")
