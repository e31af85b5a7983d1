"""CorrelationTracker: the ring buffer's correlation, spike and breakdown detection, heat map."""

import numpy as np
import pytest

from risk.correlation import CorrelationTracker

NAMES = ("EURUSD", "GBPUSD", "XAUUSD", "SPX500")


def factor_returns(rng: np.random.Generator, bars: int, correlation: float,
                   n: int = 4) -> np.ndarray:
    """(bars, n) returns whose pairwise correlations all equal `correlation`."""
    common = rng.standard_normal((bars, 1))
    own = rng.standard_normal((bars, n))
    return 0.01 * (np.sqrt(correlation) * common + np.sqrt(1 - correlation) * own)


def test_the_ring_buffer_correlation_is_that_of_the_last_window():
    returns = factor_returns(np.random.default_rng(0), 47, 0.4)
    tracker = CorrelationTracker(NAMES, window=20)
    for r in returns:
        tracker.update(r)
    np.testing.assert_allclose(tracker.correlation, np.corrcoef(returns[-20:].T), atol=1e-12)
    upper = np.corrcoef(returns[-20:].T)[np.triu_indices(4, k=1)]
    assert tracker.average == pytest.approx(upper.mean())


def test_a_jump_in_correlation_is_a_spike_and_a_collapse_a_breakdown():
    # eight instruments at 0.2, then 0.8 from bar 150, then 0.2 again from bar 270
    rng = np.random.default_rng(1)
    returns = np.concatenate([factor_returns(rng, 150, 0.2, 8), factor_returns(rng, 120, 0.8, 8),
                              factor_returns(rng, 150, 0.2, 8)])
    tracker = CorrelationTracker([f"#{i}" for i in range(8)])
    states = [tracker.update(r) for r in returns]
    assert states[:79] == ["normal"] * 79                           # window + baseline bars
    onsets = [(event.step, event.state) for event in tracker.events]
    assert any(150 <= step < 180 and state == "spike" for step, state in onsets)
    assert any(270 <= step < 330 and state == "breakdown" for step, state in onsets)
    assert not any(state == "breakdown" for step, state in onsets if 150 <= step < 270)


def test_the_heatmap_is_written_to_a_png(tmp_path):
    tracker = CorrelationTracker(NAMES, window=10)
    for r in factor_returns(np.random.default_rng(2), 10, 0.5):
        tracker.update(r)
    path = tmp_path / "figures" / "correlation.png"
    figure = tracker.heatmap(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [t.get_text() for t in figure.axes[0].get_xticklabels()] == list(NAMES)
    assert list(path.parent.iterdir()) == [path]                    # no temporary file left


def test_no_correlation_before_a_full_window_and_bad_returns_raise():
    tracker = CorrelationTracker(NAMES, window=5)
    tracker.update(np.zeros(4))
    with pytest.raises(RuntimeError, match="1 of 5 bars"):
        tracker.heatmap()
    with pytest.raises(ValueError, match="4 finite numbers"):
        tracker.update(np.array([0.0, np.nan, 0.0, 0.0]))
