"""The synthetic generator: deterministic, consistent bars, and realised statistics within
tolerance of its configuration (volatility, correlation, regime durations, sentiment IC)."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from envs.synthetic import (
    REGIMES,
    SYNTHETIC8,
    RegimeWindow,
    SyntheticConfig,
    generate,
    regime_correlations,
    stationary_distribution,
    transition_matrix,
)


@pytest.fixture(scope="module")
def long_market():
    """100 years without jumps or momentum, so realised moments compare to the configured ones
    (correlations are dominated by the rare volatile spells and need the length)."""
    return generate(SyntheticConfig(years=100, seed=11, jumps_per_year=0.0, momentum=0.0))


def test_same_seed_same_bytes_other_seed_differs():
    a, b = generate(SyntheticConfig(seed=5, years=1)), generate(SyntheticConfig(seed=5, years=1))
    assert a.ohlcv.tobytes() == b.ohlcv.tobytes() and a.macro.tobytes() == b.macro.tobytes()
    assert a.sentiment.tobytes() == b.sentiment.tobytes()
    assert not np.array_equal(a.ohlcv, generate(SyntheticConfig(seed=6, years=1)).ohlcv)


def test_bars_are_consistent():
    market = generate(SyntheticConfig(seed=1))
    o, h, l, c, v = np.moveaxis(market.ohlcv, -1, 0)
    assert (h >= np.maximum(o, c)).all() and (l <= np.minimum(o, c)).all() and (l > 0).all()
    assert (v > 0).all()
    assert market.n_bars == 2520 and market.symbols == tuple(s.symbol for s in SYNTHETIC8)


def test_realised_volatility_matches_configuration(long_market):
    realised = long_market.log_returns[1:].std(axis=0) * np.sqrt(252)
    configured = np.array([s.annual_vol for s in SYNTHETIC8])
    np.testing.assert_allclose(realised, configured, rtol=0.05)


def test_realised_correlation_matches_regime_mixture(long_market):
    config = SyntheticConfig()
    transition = transition_matrix(config.regime_durations)
    pi = stationary_distribution(transition)
    vol2 = np.asarray(config.regime_vol) ** 2
    expected = np.einsum("k,kij->ij", pi * vol2, regime_correlations(SYNTHETIC8)) / (pi @ vol2)
    realised = np.corrcoef(long_market.log_returns[1:].T)
    np.testing.assert_allclose(realised, expected, atol=0.05)
    assert realised[5, 7] > 0.8 and realised[0, 1] > 0.5 and realised[0, 2] < -0.1  # indices, EUR/GBP, EUR/JPY


def test_regime_durations_match_transition_matrix(long_market):
    regime = long_market.ground_truth.regime
    spells = np.split(regime, np.flatnonzero(np.diff(regime)) + 1)
    for k, target in enumerate(SyntheticConfig().regime_durations):
        lengths = [len(s) for s in spells if s[0] == k]
        assert len(lengths) >= 10
        assert abs(np.mean(lengths) - target) < 3 * target / np.sqrt(len(lengths)) + 2


@pytest.mark.parametrize("ic", [0.0, 0.1])
def test_sentiment_information_coefficient(ic):
    market = generate(SyntheticConfig(years=20, seed=2, sentiment_ic=ic))
    realised = spearmanr(market.sentiment[:-1].ravel(), market.log_returns[1:].ravel()).correlation
    assert abs(realised - ic) < 0.03


def test_ground_truth_predicts_and_alpha_zero_removes_it():
    market = generate(SyntheticConfig(years=20, seed=4))
    predicted = market.ground_truth.expected_returns[:-1].ravel()
    assert np.corrcoef(predicted, market.log_returns[1:].ravel())[0, 1] > 0.05
    # alpha = 0: the log mean is exactly minus half the variance, i.e. zero expected simple return
    flat = generate(SyntheticConfig(years=20, seed=4, alpha=0.0, jumps_per_year=0.0))
    expected_simple = flat.ground_truth.expected_returns + 0.5 * flat.ground_truth.conditional_vol**2
    assert np.abs(expected_simple).max() < 1e-12
    assert abs(spearmanr(flat.sentiment[:-1].ravel(), flat.log_returns[1:].ravel()).correlation) < 0.03


def test_large_universe_and_speed():
    import time

    generate(SyntheticConfig(years=1))                  # compile
    start = time.perf_counter()
    generate(SyntheticConfig())
    assert time.perf_counter() - start < 1.0
    big = generate(SyntheticConfig(universe="factor", n_instruments=60, years=2))
    assert big.ohlcv.shape == (504, 60, 5) and len(set(big.domains)) == 4


def test_forced_crash_window_keeps_the_past_and_the_draws():
    config = SyntheticConfig(years=2, seed=7)
    free = generate(config)
    window = RegimeWindow(start=250, stop=310)
    crash = generate(SyntheticConfig(years=2, seed=7, forced_regimes=[window]))
    volatile = REGIMES.index("volatile")
    np.testing.assert_array_equal(crash.ground_truth.regime[250:310], volatile)
    np.testing.assert_array_equal(crash.ground_truth.regime[:250], free.ground_truth.regime[:250])
    # same draws: every bar before the window is the unforced market's, to the byte
    assert crash.ohlcv[:250].tobytes() == free.ohlcv[:250].tobytes()
    assert crash.macro[:250].tobytes() == free.macro[:250].tobytes()
    assert not np.array_equal(crash.ohlcv[250:310], free.ohlcv[250:310])
    assert crash.attrs["forced_regimes"] == [[250, 310, "volatile"]]
    # the crash regime's volatility: regime_vol 2.2 against the free path's mix here
    ratio = crash.log_returns[250:310].std() / free.log_returns[250:310].std()
    free_vol = np.asarray(config.regime_vol)[free.ground_truth.regime[250:310]]
    assert ratio == pytest.approx(2.2 / np.sqrt(np.mean(free_vol**2)), rel=0.25)
    assert generate(SyntheticConfig(years=2, seed=7, forced_regimes=[window])).ohlcv.tobytes() == crash.ohlcv.tobytes()


def test_forced_regime_errors_name_the_window():
    with pytest.raises(ValueError, match=r"forced_regimes\[1\] = bars \[200, 600\) is not inside the market's 252"):
        generate(SyntheticConfig(years=1, forced_regimes=[RegimeWindow(1, 5), RegimeWindow(200, 600)]))
    with pytest.raises(ValueError, match=r"forced_regimes\[0\].regime 'crash' is not one of"):
        generate(SyntheticConfig(years=1, forced_regimes=[RegimeWindow(1, 5, "crash")]))
