"""Behaviour policies: bounded, causal (truncating the future changes nothing), and sensible."""

import numpy as np
import pytest

from envs.synthetic import SyntheticConfig, generate
from hierarchy.behaviour import BEHAVIOURS, behaviour_signals, mean_reversion, trend_following


@pytest.fixture(scope="module")
def close():
    return generate(SyntheticConfig(years=2, seed=1)).close


@pytest.mark.parametrize("name", BEHAVIOURS)
def test_bounded_and_causal(close, name):
    full = behaviour_signals(name, close, np.random.default_rng(0))
    assert full.shape == close.shape and np.isfinite(full).all() and (np.abs(full) <= 1).all()
    for t in (70, 200, 400):
        truncated = behaviour_signals(name, close[: t + 1], np.random.default_rng(0))
        np.testing.assert_allclose(truncated[t], full[t], rtol=1e-9, atol=1e-12)


def test_trend_is_long_an_uptrend_and_reversion_short_a_spike():
    t = np.arange(300.0)
    up = np.exp(0.002 * t + 0.01 * np.sin(t))[:, None]
    assert (trend_following(up)[100:] > 0.5).all()
    flat = np.full((100, 1), 100.0) + np.sin(np.arange(100.0))[:, None] * 0.1
    flat[60] = 110.0
    assert mean_reversion(flat)[60, 0] < -0.9
    with pytest.raises(KeyError, match="unknown behaviour"):
        behaviour_signals("astrology", flat, np.random.default_rng(0))
