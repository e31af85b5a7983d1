"""Numba kernels of the risk overlay: the exposure measures and the projection of one batch of
target weights into the limits. `risk.overlay` documents the definitions and the order.

The helpers are inlined into the batch kernel (`inline="always"`): for books of a few
instruments a call between separately compiled functions costs more than its arithmetic.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

# a limit binds when its measure exceeds the limit by more than this (relative; absolute for the
# correlation exposure, a number in [-1, 1]), so that weights just projected onto a limit, and
# perturbed there by rounding, count as inside it: the overlay is then exactly idempotent
RTOL = 1e-9

# a target weight above MAX_POSITION in magnitude is invalid input, and a nonzero limit is at
# least MIN_LIMIT: this keeps the measures of the books the overlay sees and makes clear of
# floating-point overflow and underflow (the correlation sums also rescale, see `pair_scale`)
MAX_POSITION = 1e6
MIN_LIMIT = 1e-6
# average correlations this close count as a tie in the correlation shrink
TIE = 1e-12

LIMIT_NAMES: tuple[str, ...] = (
    "instrument", "asset_class", "correlation", "gross", "margin", "var")
INSTRUMENT, ASSET_CLASS, CORRELATION, GROSS, MARGIN, VAR = range(len(LIMIT_NAMES))


class KernelLimits(NamedTuple):
    """`RiskLimits` resolved for one universe, as the kernels read them."""

    class_index: np.ndarray         # (N,) int64
    instrument_caps: np.ndarray     # (N,)
    class_caps: np.ndarray          # (K,)
    margin_rates: np.ndarray        # (N,)
    max_gross: float
    max_margin: float
    var_multiplier: float
    max_var: float
    max_correlation: float


class Workspace(NamedTuple):
    """Scratch arrays of one env's projection, reused across envs."""

    inv_sigma: np.ndarray           # (N,) 1 / volatility, 0 without variance
    peer: np.ndarray                # (N,) peer sums, see `covariance_products`
    scaled: np.ndarray              # (N,) w_i / sigma_i
    class_gross: np.ndarray         # (K,)


@njit(cache=True, error_model="numpy", inline="always")
def ratio(value: float, limit: float) -> float:
    """value / limit, with a zero limit giving 0 for value <= 0 and infinity above."""
    if limit == 0.0:
        return 0.0 if value <= 0.0 else np.inf
    return value / limit


@njit(cache=True, error_model="numpy", inline="always")
def all_finite(values: np.ndarray) -> bool:
    """Whether every entry of a vector is finite."""
    for i in range(values.shape[0]):
        if not math.isfinite(values[i]):
            return False
    return True


@njit(cache=True, error_model="numpy", inline="always")
def valid_target(target: np.ndarray) -> bool:
    """Whether every weight is finite and at most MAX_POSITION in magnitude."""
    for i in range(target.shape[0]):
        if not abs(target[i]) <= MAX_POSITION:          # False for NaN too
            return False
    return True


@njit(cache=True, error_model="numpy", inline="always")
def fill(values: np.ndarray, value: float) -> None:
    for i in range(values.shape[0]):
        values[i] = value


@njit(cache=True, error_model="numpy", inline="always")
def inverse_volatilities(covariance: np.ndarray, inv_sigma: np.ndarray) -> None:
    """inv_sigma_i = 1 / sqrt(S_ii), or 0 for an instrument without variance (uncorrelated)."""
    for i in range(covariance.shape[0]):
        variance = covariance[i, i]
        inv_sigma[i] = 1.0 / math.sqrt(variance) if variance > 0.0 else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def covariance_products(w: np.ndarray, covariance: np.ndarray, work: Workspace) -> float:
    """w' S w, and the peer sums peer_i = sum_{j != i} R_ij w_j (R the correlation matrix) into
    the workspace. The sums skip the diagonal rather than subtract it, which keeps them exact
    for tiny positions next to large ones."""
    n = w.shape[0]
    inv_sigma, peer, scaled = work.inv_sigma, work.peer, work.scaled
    for j in range(n):
        scaled[j] = inv_sigma[j] * w[j]
    quadratic = 0.0
    for i in range(n):
        row = covariance[i]
        row_sum = row[i] * w[i]
        peer_sum = 0.0
        for j in range(i):
            row_sum += row[j] * w[j]
            peer_sum += row[j] * scaled[j]
        for j in range(i + 1, n):
            row_sum += row[j] * w[j]
            peer_sum += row[j] * scaled[j]
        quadratic += w[i] * row_sum
        peer[i] = inv_sigma[i] * peer_sum
    return quadratic


@njit(cache=True, error_model="numpy", inline="always")
def pair_scale(w: np.ndarray) -> float:
    """A power of two s with s * max |w_i| in [0.5, 1) (1 for a flat book). The correlation
    exposure is a ratio of sums of products of two weights, unchanged when every weight is
    multiplied by s, and multiplying by a power of two is exact; with it the products of tiny
    positions do not underflow."""
    largest = 0.0
    for i in range(w.shape[0]):
        largest = max(largest, abs(w[i]))
    if largest == 0.0:
        return 1.0
    return math.ldexp(1.0, -math.frexp(largest)[1])


@njit(cache=True, error_model="numpy", inline="always")
def pair_sums(w: np.ndarray, peer: np.ndarray) -> tuple[float, float]:
    """(sum_{i != j} w_i R_ij w_j, sum_{i != j} |w_i| |w_j|) of the book rescaled by
    `pair_scale`, the correlation exposure's numerator and denominator. The second adds positive
    terms only (running prefix sums), so it has no cancellation."""
    s = pair_scale(w)
    numerator, denominator, prefix = 0.0, 0.0, 0.0
    for i in range(w.shape[0]):
        numerator += (s * w[i]) * (s * peer[i])
        a = s * abs(w[i])
        denominator += 2.0 * a * prefix
        prefix += a
    return numerator, denominator


@njit(cache=True, error_model="numpy", inline="always")
def correlation_exposure(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def shrink_correlation(w: np.ndarray, covariance: np.ndarray, cap: float, work: Workspace) -> None:
    """Shrink positions until the correlation exposure is at most `cap`.

    Each round takes the position whose exposure-weighted average correlation with the rest of
    the book is highest (it is at least the book's, so shrinking it lowers the exposure) and
    shrinks it by the factor t in [0, 1) that brings the exposure to `cap`: the exposure is
    (A + t X) / (B + t Y) in t, linear-fractional and monotone, so t is one division; when even
    t = 0 is not enough the position is closed and the next round starts. With at most one
    position left the exposure is 0, so at most N rounds run. The workspace's peer sums are
    those of `w` on entry and are kept current.
    """
    n = w.shape[0]
    inv_sigma, peer = work.inv_sigma, work.peer
    for _ in range(n):
        s = pair_scale(w)                                  # sums of products run rescaled
        gross = 0.0
        for i in range(n):
            gross += abs(w[i])
        b, best_correlation = -1, -np.inf
        for i in range(n):
            others = gross - abs(w[i])
            if w[i] != 0.0 and others > 0.0:
                # sum_j |w_j| s_i s_j R_ij / sum_j |w_j| over the other positions j; of two
                # positions as correlated (a pair, say), the smaller goes first
                correlation = math.copysign(1.0, w[i]) * peer[i] / others
                if correlation > best_correlation + TIE or (
                        correlation > best_correlation - TIE and abs(w[i]) < abs(w[b])):
                    b, best_correlation = i, correlation
        if b < 0:
            return
        # the book without position b (its peer sums lose b's term), and b's own pairs
        rest_numerator, rest_denominator, prefix, others = 0.0, 0.0, 0.0, 0.0
        for j in range(n):
            if j == b:
                continue
            rho_jb = covariance[b, j] * inv_sigma[j] * inv_sigma[b]
            rest_numerator += (s * w[j]) * (s * (peer[j] - rho_jb * w[b]))
            a = s * abs(w[j])
            rest_denominator += 2.0 * a * prefix
            prefix += a
            others += a
        own_numerator = 2.0 * (s * w[b]) * (s * peer[b])
        own_denominator = 2.0 * (s * abs(w[b])) * others
        # t = 0 when the rest alone is over the cap, or has one position (only closing b helps)
        t = 0.0
        excess = own_numerator - cap * own_denominator          # > 0 as b is above the cap
        if rest_denominator > 0.0 and rest_numerator <= cap * rest_denominator and excess > 0.0:
            t = min((cap * rest_denominator - rest_numerator) / excess, 1.0)
        change = w[b] * (t - 1.0)
        for j in range(n):
            if j != b:
                peer[j] += covariance[b, j] * inv_sigma[j] * inv_sigma[b] * change
        w[b] *= t
        if rest_numerator + t * own_numerator <= cap * (rest_denominator + t * own_denominator):
            return


@njit(cache=True, error_model="numpy", inline="always")
def book_risk(w: np.ndarray, covariance: np.ndarray, work: Workspace) -> tuple[float, float]:
    """(w' S w, correlation exposure) of a book, leaving its peer sums in the workspace."""
    quadratic = covariance_products(w, covariance, work)
    numerator, denominator = pair_sums(w, work.peer)
    return quadratic, correlation_exposure(numerator, denominator)


@njit(cache=True, error_model="numpy", inline="always")
def utilisation(w: np.ndarray, quadratic: float, correlation: float, limits: KernelLimits,
                work: Workspace, out: np.ndarray) -> None:
    """Each limit's measure over its limit into out (6,), the caps reporting their largest,
    given the book's w' S w and correlation exposure."""
    instrument, gross, margin = 0.0, 0.0, 0.0
    class_gross = work.class_gross
    fill(class_gross, 0.0)
    for i in range(w.shape[0]):
        a = abs(w[i])
        instrument = max(instrument, ratio(a, limits.instrument_caps[i]))
        gross += a
        margin += limits.margin_rates[i] * a
        class_gross[limits.class_index[i]] += a
    asset_class = 0.0
    for k in range(class_gross.shape[0]):
        asset_class = max(asset_class, ratio(class_gross[k], limits.class_caps[k]))
    out[INSTRUMENT] = instrument
    out[ASSET_CLASS] = asset_class
    out[CORRELATION] = correlation / limits.max_correlation
    out[GROSS] = ratio(gross, limits.max_gross)
    out[MARGIN] = ratio(margin, limits.max_margin)
    out[VAR] = ratio(limits.var_multiplier * math.sqrt(max(quadratic, 0.0)), limits.max_var)


@njit(cache=True, error_model="numpy", inline="always")
def project(w: np.ndarray, covariance: np.ndarray, quadratic: float, limits: KernelLimits,
            work: Workspace, bound: np.ndarray) -> tuple[float, float]:
    """Shrink one book `w` (N,) in place into every limit, in the order of `risk.overlay`,
    flagging in `bound` (6,) the steps that changed it; `quadratic` and the workspace's peer
    sums are those of `w` on entry. Returns the new book's w' S w and correlation exposure
    (step 4's scaling by c multiplies the first by c^2 and leaves the second as it is)."""
    n = w.shape[0]
    for i in range(n):                                              # 1. instrument caps
        if abs(w[i]) > limits.instrument_caps[i]:
            w[i] = math.copysign(limits.instrument_caps[i], w[i])
            bound[INSTRUMENT] = True
    factor = work.class_gross                                       # 2. class caps
    fill(factor, 0.0)
    for i in range(n):
        factor[limits.class_index[i]] += abs(w[i])
    for k in range(factor.shape[0]):
        if factor[k] > limits.class_caps[k] * (1.0 + RTOL):
            factor[k] = limits.class_caps[k] / factor[k]
            bound[ASSET_CLASS] = True
        else:
            factor[k] = 1.0
    if bound[ASSET_CLASS]:
        for i in range(n):
            w[i] *= factor[limits.class_index[i]]
    if bound[INSTRUMENT] or bound[ASSET_CLASS]:
        quadratic = covariance_products(w, covariance, work)
    numerator, denominator = pair_sums(w, work.peer)                # 3. correlation exposure
    if denominator > 0.0 and numerator > (limits.max_correlation + RTOL) * denominator:
        bound[CORRELATION] = True
        # the shrink tracks the exposure incrementally; the check recomputes it from scratch,
        # the way the next pass will, and goes round again should rounding have left it over
        for _ in range(n):
            shrink_correlation(w, covariance, limits.max_correlation, work)
            quadratic = covariance_products(w, covariance, work)
            numerator, denominator = pair_sums(w, work.peer)
            if numerator <= (limits.max_correlation + RTOL / 2.0) * denominator:
                break
    gross, margin = 0.0, 0.0                                        # 4. gross, margin, VaR
    for i in range(n):
        gross += abs(w[i])
        margin += limits.margin_rates[i] * abs(w[i])
    var = limits.var_multiplier * math.sqrt(max(quadratic, 0.0))
    scale = 1.0
    if gross > limits.max_gross * (1.0 + RTOL):
        scale = min(scale, limits.max_gross / gross)
        bound[GROSS] = True
    if margin > limits.max_margin * (1.0 + RTOL):
        scale = min(scale, limits.max_margin / margin)
        bound[MARGIN] = True
    if var > limits.max_var * (1.0 + RTOL):
        scale = min(scale, limits.max_var / var)
        bound[VAR] = True
    if scale < 1.0:
        for i in range(n):
            w[i] *= scale
    return quadratic * scale * scale, correlation_exposure(numerator, denominator)


@njit(cache=True, error_model="numpy")
def overlay_batch(targets: np.ndarray, covariance: np.ndarray, trading_allowed: np.ndarray,
                  limits: KernelLimits, executed: np.ndarray, bound: np.ndarray,
                  target_utilisation: np.ndarray, executed_utilisation: np.ndarray,
                  invalid_target: np.ndarray, invalid_covariance: np.ndarray) -> None:
    """Project targets (E, N) into the limits, env by env, into `executed` (E, N).

    `covariance` is (1, N, N), shared by every env, or (E, N, N). An env with a non-finite
    target (or one over MAX_POSITION) or covariance, or not allowed to trade, gets zero
    weights; one with an invalid input reports NaN target utilisation. Outputs are filled in
    place."""
    E, N = targets.shape
    shared = covariance.shape[0] == 1
    work = Workspace(np.empty(N), np.empty(N), np.empty(N), np.empty(limits.class_caps.shape[0]))
    covariance_finite = True
    for e in range(E):
        c = 0 if shared else e
        if e == 0 or not shared:
            covariance_finite = True
            for i in range(N):
                covariance_finite &= all_finite(covariance[c, i])
            inverse_volatilities(covariance[c], work.inv_sigma)
        w = executed[e]
        fill(w, 0.0)
        fill(executed_utilisation[e], 0.0)
        for k in range(bound.shape[1]):
            bound[e, k] = False
        invalid_target[e] = not valid_target(targets[e])
        invalid_covariance[e] = not covariance_finite
        if invalid_target[e] or invalid_covariance[e]:
            fill(target_utilisation[e], np.nan)
            continue
        for i in range(N):
            w[i] = targets[e, i]
        quadratic, correlation = book_risk(w, covariance[c], work)
        utilisation(w, quadratic, correlation, limits, work, target_utilisation[e])
        if not trading_allowed[e]:
            fill(w, 0.0)
            continue
        quadratic, correlation = project(w, covariance[c], quadratic, limits, work, bound[e])
        utilisation(w, quadratic, correlation, limits, work, executed_utilisation[e])
