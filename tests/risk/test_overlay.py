"""The overlay against its contract: after it every limit holds (measured here independently,
in numpy), positions only shrink toward zero, and a second pass changes nothing."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from risk.kernels import LIMIT_NAMES, RTOL
from risk.limits import RiskLimits
from risk.overlay import RiskOverlay

CLASSES = ("fx", "commodity", "equity_index")


def measures(w: np.ndarray, cov: np.ndarray, overlay: RiskOverlay) -> dict[str, np.ndarray]:
    """Each limit's measure of one book, straight from the definitions."""
    a = np.abs(w)
    sigma = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(np.outer(sigma, sigma) > 0, cov / np.outer(sigma, sigma), 0.0)
    off = ~np.eye(len(w), dtype=bool)
    pairs = np.outer(a, a)[off].sum()
    rho = (np.outer(w, w) * corr)[off].sum() / pairs if pairs > 0 else 0.0
    class_gross = np.bincount(overlay.class_index, weights=a, minlength=len(overlay.class_names))
    return {"instrument": a, "asset_class": class_gross, "correlation": rho, "gross": a.sum(),
            "margin": overlay.kernel_limits.margin_rates @ a,
            "var": overlay.kernel_limits.var_multiplier * math.sqrt(max(w @ cov @ w, 0.0))}


def assert_within_limits(w: np.ndarray, cov: np.ndarray, overlay: RiskOverlay) -> None:
    m, limits = measures(w, cov, overlay), overlay.kernel_limits
    bounds = {"instrument": limits.instrument_caps, "asset_class": limits.class_caps,
              "gross": limits.max_gross, "margin": limits.max_margin, "var": limits.max_var}
    for name, bound in bounds.items():
        assert np.all(m[name] <= bound * (1 + 2 * RTOL) + 1e-15), (name, m[name], bound)
    assert m["correlation"] <= limits.max_correlation + 2 * RTOL, m["correlation"]


@st.composite
def cases(draw):
    n = draw(st.integers(1, 6))
    envs = draw(st.integers(1, 3))
    # nonzero weights from 1e-13 (below any tradable size) to 3 times equity
    weight = st.one_of(st.just(0.0), st.floats(-3, 3).map(lambda x: x if abs(x) >= 1e-13 else 0.0),
                       st.sampled_from([1e-13, -1e-11]))
    targets = draw(arrays(np.float64, (envs, n), elements=weight))
    loadings = draw(arrays(np.float64, (n, draw(st.integers(1, 3))),
                           elements=st.floats(-0.05, 0.05, allow_subnormal=False)))
    noise = draw(arrays(np.float64, n, elements=st.floats(0, 1e-3, allow_subnormal=False)))
    cov = loadings @ loadings.T + np.diag(noise)                             # PSD
    cap = st.one_of(st.just(0.0), st.floats(1e-6, 2), st.just(math.inf))
    limits = RiskLimits(
        max_var=draw(st.floats(0.001, 0.1)), var_confidence=draw(st.floats(0.5, 0.999)),
        var_distribution=draw(st.sampled_from(["normal", "student_t"])),
        max_correlation_exposure=draw(st.floats(0.01, 1.0)),
        max_gross_leverage=draw(st.one_of(st.just(0.0), st.floats(1e-6, 5), st.just(math.inf))),
        max_class_share=draw(st.floats(0.05, 1.0)), max_instrument_weight=draw(cap),
        max_margin_usage=draw(st.floats(0.01, 1.0)),
        margin_rates={c: draw(st.floats(0, 0.5)) for c in CLASSES})
    class_index = draw(arrays(np.int64, n, elements=st.integers(0, len(CLASSES) - 1)))
    return targets, cov, RiskOverlay(limits, class_index, CLASSES)


@settings(max_examples=300, deadline=None)
@given(cases())
def test_limits_hold_positions_only_shrink_and_a_second_pass_changes_nothing(case):
    targets, cov, overlay = case
    executed, report = overlay.apply(targets, cov)
    for w in executed:
        assert_within_limits(w, cov, overlay)
    assert np.all(executed * targets >= 0)                               # no sign flips
    assert np.all(np.abs(executed) <= np.abs(targets))                   # nothing grows
    slack = np.full(len(LIMIT_NAMES), 2 * RTOL)
    slack[LIMIT_NAMES.index("correlation")] /= overlay.limits.max_correlation_exposure  # absolute
    assert np.all(report.executed_utilisation <= 1 + slack + 1e-12)
    again, second = overlay.apply(executed, cov)
    np.testing.assert_array_equal(again, executed)
    assert not second.bound.any()


@settings(max_examples=50, deadline=None)
@given(cases())
def test_a_covariance_per_env_gives_what_the_shared_one_gives(case):
    targets, cov, overlay = case
    per_env = np.broadcast_to(cov, (len(targets), *cov.shape))
    shared, _ = overlay.apply(targets, cov)
    np.testing.assert_array_equal(overlay.apply(targets, per_env)[0], shared)


def uncorrelated(n: int, vol: float = 0.01) -> np.ndarray:
    return np.eye(n) * vol ** 2


def loose(**changes) -> RiskLimits:
    """Limits that never bind but for the ones given."""
    limits = {"max_var": math.inf, "max_correlation_exposure": 1.0, "max_gross_leverage": math.inf,
              "max_class_share": 1.0, "max_instrument_weight": math.inf, "max_margin_usage": math.inf}
    return RiskLimits(**{**limits, **changes})


def test_instrument_caps_clip_each_position_and_overrides_apply_by_symbol():
    overlay = RiskOverlay(loose(max_instrument_weight=0.5, instrument_caps={"B": 0.1}),
                          np.zeros(3, dtype=np.int64), ["fx"], ["A", "B", "C"])
    executed, report = overlay.apply(np.array([[0.8, -0.3, 0.2]]), uncorrelated(3))
    np.testing.assert_array_equal(executed, [[0.5, -0.1, 0.2]])
    assert report.binding_limits(0) == ("instrument",)
    assert report.target_utilisation[0, 0] == pytest.approx(3.0)


def test_a_class_over_its_cap_scales_within_itself_only():
    overlay = RiskOverlay(loose(max_gross_leverage=2.0, max_class_share=0.4),
                          np.array([0, 0, 1]), ["fx", "equity_index"])
    executed, report = overlay.apply(np.array([[0.6, -0.6, 0.5]]), uncorrelated(3))
    np.testing.assert_allclose(executed, [[0.4, -0.4, 0.5]])          # fx cap 0.8 of gross 2
    assert report.binding_limits(0) == ("asset_class",)


def test_gross_margin_and_var_scale_the_book_to_the_tightest():
    cov = uncorrelated(2, 0.01)
    limits = loose(max_gross_leverage=1.5, max_margin_usage=0.05, max_var=0.015,
                   margin_rates={"fx": 0.05, "commodity": 0.05})
    overlay = RiskOverlay(limits, np.array([0, 1]), ["fx", "commodity"])
    executed, report = overlay.apply(np.array([[1.0, -1.0]]), cov)
    # margin needs 0.5, VaR (1.645 * 0.01 * sqrt 2 = 0.0233) needs 0.645, gross needs 0.75
    np.testing.assert_allclose(executed, [[0.5, -0.5]])
    assert report.binding_limits(0) == ("gross", "margin", "var")
    np.testing.assert_allclose(report.target_utilisation[0, 3:],
                               [2 / 1.5, 0.1 / 0.05, 1.6448536 * 0.01 * math.sqrt(2) / 0.015])


def test_var_binds_to_exactly_its_limit_under_both_distributions():
    cov = np.array([[1.0, 0.5], [0.5, 1.0]]) * 1e-4
    for distribution in ("normal", "student_t"):
        limits = loose(max_var=0.01, var_confidence=0.99, var_distribution=distribution, var_dof=4)
        overlay = RiskOverlay(limits, np.zeros(2, dtype=np.int64), ["fx"])
        executed, _ = overlay.apply(np.array([[2.0, 1.0]]), cov)
        volatility = math.sqrt(executed[0] @ cov @ executed[0])
        assert overlay.kernel_limits.var_multiplier * volatility == pytest.approx(0.01, rel=1e-12)
        np.testing.assert_allclose(executed[0, 0] / executed[0, 1], 2.0)


def test_correlation_exposure_counts_pnl_correlation_so_a_long_short_of_opposites_is_one_bet():
    cov = np.array([[1.0, -0.8], [-0.8, 1.0]]) * 1e-4          # EURUSD and USDJPY
    overlay = RiskOverlay(loose(max_correlation_exposure=0.7), np.zeros(2, dtype=np.int64), ["fx"])
    executed, report = overlay.apply(np.array([[1.0, -1.0], [1.0, 1.0]]), cov)
    np.testing.assert_allclose(report.target_utilisation[:, 2], [0.8 / 0.7, -0.8 / 0.7])
    assert (executed[0] == 0).sum() == 1                       # two positions: one must close
    np.testing.assert_array_equal(executed[1], [1.0, 1.0])     # the hedge stays


def test_correlation_exposure_shrinks_the_most_correlated_position_in_closed_form():
    # A and B correlate 0.9, C with neither: rho(t) = 0.9 t / (2 t + 1) = 0.2 at t = 0.4
    cov = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]]) * 1e-4
    overlay = RiskOverlay(loose(max_correlation_exposure=0.2), np.zeros(3, dtype=np.int64), ["fx"])
    executed, report = overlay.apply(np.array([[1.0, 1.0, 1.0]]), cov)
    np.testing.assert_allclose(executed, [[0.4, 1.0, 1.0]], rtol=1e-12)
    assert report.binding_limits(0) == ("correlation",)
    assert report.target_utilisation[0, 2] == pytest.approx(0.3 / 0.2)


def test_non_finite_inputs_give_zero_weights_with_the_reason_and_spare_the_other_envs():
    overlay = RiskOverlay(RiskLimits(), np.zeros(2, dtype=np.int64), ["fx"])
    targets = np.array([[0.1, np.nan], [0.1, 0.1], [np.inf, 0.1]])
    cov = np.broadcast_to(uncorrelated(2), (3, 2, 2)).copy()
    cov[1, 0, 1] = cov[1, 1, 0] = np.nan
    executed, report = overlay.apply(targets, cov)
    np.testing.assert_array_equal(executed, np.zeros((3, 2)))
    np.testing.assert_array_equal(report.invalid_target, [True, False, True])
    np.testing.assert_array_equal(report.invalid_covariance, [False, True, False])
    assert np.isnan(report.target_utilisation[[0, 1, 2]]).all()
    healthy, _ = overlay.apply(targets[[1]], uncorrelated(2))
    np.testing.assert_array_equal(overlay.apply(np.array([[0.1, np.nan], [0.1, 0.1]]),
                                                uncorrelated(2))[0][1], healthy[0])
    shared_nan = np.full((2, 2), np.nan)
    assert overlay.apply(targets[[1]], shared_nan)[1].invalid_covariance.all()


def test_envs_held_by_the_kill_switch_are_flat_and_flagged():
    overlay = RiskOverlay(RiskLimits(), np.zeros(2, dtype=np.int64), ["fx"])
    executed, report = overlay.apply(np.full((2, 2), 0.1), uncorrelated(2),
                                     trading_allowed=np.array([True, False]))
    np.testing.assert_array_equal(executed[1], [0.0, 0.0])
    np.testing.assert_array_equal(executed[0], [0.1, 0.1])
    np.testing.assert_array_equal(report.halted, [False, True])
    assert report.gross_executed[1] == 0 and report.gross_target[1] == pytest.approx(0.2)


def test_malformed_inputs_raise_naming_the_problem():
    overlay = RiskOverlay(RiskLimits(), np.zeros(2, dtype=np.int64), ["fx"], ["EURUSD", "GBPUSD"])
    with pytest.raises(ValueError, match=r"expected \(E, 2\)"):
        overlay.apply(np.zeros((1, 3)), uncorrelated(3))
    with pytest.raises(ValueError, match="covariance has shape"):
        overlay.apply(np.zeros((2, 2)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="GBPUSD the negative variance"):
        overlay.apply(np.zeros((1, 2)), np.diag([1e-4, -1e-4]))
    with pytest.raises(ValueError, match="trading_allowed"):
        overlay.apply(np.zeros((2, 2)), uncorrelated(2), trading_allowed=np.ones(3, dtype=bool))


def test_for_universe_maps_class_names_and_the_report_counts_bindings():
    overlay = RiskOverlay.for_universe(RiskLimits(), ["EURUSD", "XAUUSD", "SPX500"],
                                       ["fx", "commodity", "equity_index"])
    assert overlay.class_names == ("fx", "commodity", "equity_index")
    np.testing.assert_allclose(overlay.kernel_limits.margin_rates, [0.0333, 0.10, 0.05])
    _, report = overlay.apply(np.array([[1.0, 0.0, 0.0], [0.1, 0.1, 0.1]]), uncorrelated(3))
    assert report.bound_counts() == dict.fromkeys(LIMIT_NAMES, 0) | {"asset_class": 1}
