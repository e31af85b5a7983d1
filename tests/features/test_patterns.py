"""The pattern library against hand-made series: each pattern fires where it should, in the
right direction, and nowhere else."""

import numpy as np
import pytest

from features.patterns import band_reversion, breakout_with_volume, trend_continuation


def bars_from_closes(closes: np.ndarray, spread: float = 0.2) -> tuple[np.ndarray, ...]:
    """(T, 1) high, low, close around hand-made closes."""
    c = np.asarray(closes, dtype=np.float64)[:, None]
    return c + spread, c - spread, c


def test_trend_continuation_fires_on_the_resumption_after_a_pullback():
    closes = np.r_[100.0 + np.arange(40), 138.0, 140.0, 141.0]   # rise, pullback at 40, resume at 41
    high, low, close = bars_from_closes(closes)
    signal = trend_continuation(high, low, close, fast=5, slow=15, persist=3)[:, 0]
    assert signal[41] == 1.0 and np.count_nonzero(signal) == 1
    down = trend_continuation(*bars_from_closes(300.0 - closes), fast=5, slow=15, persist=3)[:, 0]
    assert down[41] == -1.0 and np.count_nonzero(down) == 1
    # a resumption that does not clear the pullback bar's high is no signal
    weak = np.r_[100.0 + np.arange(40), 138.0, 138.1]
    assert not trend_continuation(*bars_from_closes(weak), fast=5, slow=15, persist=3).any()


def test_trend_continuation_needs_an_established_trend():
    # a fresh cross: the fast EMA has been above the slow one for fewer than `persist` bars
    closes = np.r_[np.full(30, 100.0), 103.0, 102.0, 104.0]
    signal = trend_continuation(*bars_from_closes(closes), fast=5, slow=15, persist=5)
    assert not signal.any()
    assert trend_continuation(*bars_from_closes(closes), fast=5, slow=15, persist=2)[32, 0] == 1.0


def test_breakout_needs_the_range_broken_on_heavy_volume():
    rng = np.random.default_rng(0)
    closes = 100.0 + rng.uniform(-1.0, 1.0, 32)
    high, low, close = bars_from_closes(closes)
    volume = np.full((32, 1), 1000.0)
    close[30], high[30] = 105.0, 105.2                          # breaks the 20-bar high ...
    volume[30] = 3000.0                                         # ... on three times the volume
    close[31], low[31] = 94.0, 93.8                             # breaks the low on normal volume
    signal = breakout_with_volume(high, low, close, volume, np.array([True]), window=20, volume_ratio=1.5)[:, 0]
    assert signal[30] == 1.0 and np.count_nonzero(signal) == 1
    volume[31] = 3000.0
    signal = breakout_with_volume(high, low, close, volume, np.array([True]), window=20, volume_ratio=1.5)[:, 0]
    assert signal[31] == -1.0
    assert not breakout_with_volume(high, low, close, volume, np.array([False]), window=20).any()


def test_band_reversion_fires_at_the_extremes_only():
    rng = np.random.default_rng(1)
    calm = 100.0 + 0.1 * rng.standard_normal(40)
    closes = np.r_[calm, 99.0, 98.0, 97.5, calm[-1]]            # a slide far below the band, then back
    signal = band_reversion(closes[:, None], window=20, width=2.0, rsi_window=14)[:, 0]
    assert (signal[40:43] == 1.0).all() and not signal[:40].any() and signal[43] == 0.0
    mirrored = band_reversion((200.0 - closes)[:, None], window=20, width=2.0, rsi_window=14)[:, 0]
    np.testing.assert_array_equal(mirrored, -signal)


def test_bad_windows_are_named():
    high, low, close = bars_from_closes(np.arange(50.0) + 1)
    with pytest.raises(ValueError, match="fast=15, slow=5"):
        trend_continuation(high, low, close, fast=15, slow=5)
