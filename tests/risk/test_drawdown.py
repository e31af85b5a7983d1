"""The kill switch on hand-made equity paths."""

import numpy as np
import pytest

from risk.drawdown import DrawdownTracker, KillSwitchTrigger


def run(tracker: DrawdownTracker, path: np.ndarray) -> np.ndarray:
    """(T, E) allowed masks along an equity path (T, E)."""
    return np.array([tracker.update(equity) for equity in path])


def test_the_switch_fires_past_the_limit_holds_flat_for_the_cooldown_then_resumes():
    tracker = DrawdownTracker(2, max_drawdown=0.10, cooldown=2)
    env0 = [100, 110, 98, 97, 96, 95, 90, 85]   # 98 / 110 = 10.9 % down at bar 2
    env1 = [100, 101, 102, 103, 104, 105, 106, 107]
    allowed = run(tracker, np.array([env0, env1], dtype=float).T)
    # bar 2 fires, bars 3-4 cool down, bar 5 resumes with its peak at 95; 85 / 95 is 10.5 % down
    np.testing.assert_array_equal(allowed[:, 0], [1, 1, 0, 0, 0, 1, 1, 0])
    assert allowed[:, 1].all()
    assert tracker.triggers == [
        KillSwitchTrigger(0, 2, 2, pytest.approx(1 - 98 / 110), 98.0, 110.0),
        KillSwitchTrigger(0, 7, 7, pytest.approx(1 - 85 / 95), 85.0, 95.0)]


def test_a_zero_cooldown_flattens_only_the_trigger_bar():
    tracker = DrawdownTracker(1, max_drawdown=0.05, cooldown=0)
    allowed = run(tracker, np.array([[100.0], [94.0], [93.0], [94.0]]))
    np.testing.assert_array_equal(allowed[:, 0], [1, 0, 1, 1])


def test_reset_clears_one_envs_peak_and_cooldown_only():
    tracker = DrawdownTracker(2, max_drawdown=0.10, cooldown=5)
    run(tracker, np.array([[100.0, 100.0], [80.0, 80.0]]))            # both fire
    tracker.reset(np.array([0]))
    allowed = tracker.update(np.array([50.0, 80.0]))
    np.testing.assert_array_equal(allowed, [True, False])
    assert tracker.peak[0] == 50.0 and tracker.episode_step[0] == 1
    tracker.update(np.array([44.0, 80.0]))                            # 12 % below the new peak
    assert tracker.triggers[-1].env == 0 and tracker.triggers[-1].episode_step == 1


def test_drawdown_is_measured_from_the_running_peak():
    tracker = DrawdownTracker(1, max_drawdown=0.5)
    run(tracker, np.array([[100.0], [120.0], [90.0]]))
    assert tracker.drawdown[0] == pytest.approx(0.25)


def test_bad_equity_raises_naming_the_env():
    tracker = DrawdownTracker(3)
    with pytest.raises(ValueError, match="env 1 is nan"):
        tracker.update(np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        tracker.update(np.ones(2))
