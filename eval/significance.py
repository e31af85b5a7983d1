"""Is a strategy's Sharpe ratio really different from a baseline's on the same dates, and how
precisely is one Sharpe ratio known?

Two paired tests of H0: SR(strategy) = SR(baseline), on the per-bar Sharpe ratio difference:
- `memmel_test`, Jobson & Korkie (1981) with Memmel's (2003) corrected variance. Closed form;
  assumes returns iid over time and jointly normal, and loses its size when they are not.
- `ledoit_wolf_test`, Ledoit & Wolf (2008), "Robust performance hypothesis testing with the
  Sharpe ratio", §3.2: a studentised circular block bootstrap. Valid under fat tails and serial
  dependence (volatility clustering), at the cost of R resamples.
`sharpe_confidence_interval` applies the same studentised block bootstrap to one Sharpe ratio.

Both series are turned into excess returns over the per-bar risk-free rate first. Sharpe ratios
are eval.metrics' (ddof = 1); the delta-method standard errors use the moment estimators of
Ledoit & Wolf (divide by T), as their code does: the two differ by a factor sqrt(T / (T - 1)).
Estimates, standard errors and intervals are reported annualised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from arch.bootstrap import CircularBlockBootstrap, optimal_block_length
from scipy import stats

from eval import metrics

# Parzen-kernel bandwidth constant, S_T = 2.6614 (alpha T)^(1/5) (Andrews 1991).
_PARZEN_BANDWIDTH = 2.6614
# Largest singular value kept in the prewhitening VAR(1) (Andrews & Monahan 1992).
_MAX_PREWHITENING_ROOT = 0.97


@dataclass(frozen=True)
class SharpeInference:
    """A Sharpe ratio, or a difference of two, with its standard error, a two-sided test of
    H0: it is 0, and a confidence interval; all annualised."""

    estimate: float
    standard_error: float
    statistic: float                  # estimate / standard_error
    p_value: float
    interval: tuple[float, float]
    resamples: int = 0                # bootstrap resamples behind p and the interval (0: closed form)


def _excess_returns(columns: list[np.ndarray], risk_free: float, periods_per_year: float) -> np.ndarray:
    """(T, k) returns over the per-bar risk-free rate (eval.metrics' conversion)."""
    lengths = [np.shape(c) for c in columns]
    if any(len(shape) != 1 for shape in lengths) or len(set(lengths)) != 1:
        raise ValueError(f"return series must be 1-D and on the same dates, got shapes {lengths}")
    r = np.column_stack(columns).astype(np.float64)
    if r.shape[0] < 4:
        raise ValueError(f"need at least 4 bars, got {r.shape[0]}")
    bad = np.argwhere(~np.isfinite(r))
    if bad.size:
        raise ValueError(f"series {bad[0, 1]} is NaN or infinite at bar {bad[0, 0]}")
    return r - metrics.per_bar_rate(risk_free, periods_per_year)


def _per_bar_sharpe(excess: np.ndarray) -> np.ndarray:
    return metrics.sharpe_ratio(excess, 0.0, periods_per_year=1.0)


def memmel_test(strategy: np.ndarray, baseline: np.ndarray, risk_free: float = 0.0,
                periods_per_year: float = metrics.TRADING_DAYS,
                confidence: float = 0.95) -> SharpeInference:
    """Jobson-Korkie test with Memmel's (2003) correction: with per-bar Sharpe ratios a, b and
    return correlation rho over T bars, Var(a - b) = (2 - 2 rho + (a^2 + b^2) / 2 - a b rho^2) / T,
    and (a - b) / sqrt(Var) is standard normal under H0. Assumes iid, jointly normal returns."""
    excess = _excess_returns([strategy, baseline], risk_free, periods_per_year)
    a, b = _per_bar_sharpe(excess)
    rho = np.corrcoef(excess, rowvar=False)[0, 1]
    variance = (2.0 - 2.0 * rho + (a**2 + b**2) / 2.0 - a * b * rho**2) / excess.shape[0]
    scale = np.sqrt(periods_per_year)
    difference, se = (a - b) * scale, np.sqrt(variance) * scale
    z = stats.norm.ppf((1.0 + confidence) / 2.0)
    statistic = difference / se
    return SharpeInference(estimate=float(difference), standard_error=float(se),
                           statistic=float(statistic), p_value=float(2.0 * stats.norm.sf(abs(statistic))),
                           interval=(float(difference - z * se), float(difference + z * se)))


def _moments_and_gradient(excess: np.ndarray, signs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moment vectors y_t = (r_t, r_t^2) per series, (..., T, 2k), and the gradient (..., 2k) at
    their mean of sum_i signs_i mu_i / sqrt(gamma_i - mu_i^2), gamma the uncentred second moment
    (Ledoit & Wolf 2008, §3.1). `excess` is (..., T, k)."""
    y = np.concatenate([excess, excess**2], axis=-1)
    k = excess.shape[-1]
    mean = y.mean(axis=-2)
    mu, gamma = mean[..., :k], mean[..., k:]
    sigma3 = (gamma - mu**2) ** 1.5
    with np.errstate(divide="ignore", invalid="ignore"):     # a constant series: NaN, no Sharpe ratio
        gradient = np.concatenate([signs * gamma / sigma3, -signs * mu / (2.0 * sigma3)], axis=-1)
    return y, gradient


def _parzen(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x <= 0.5, 1.0 - 6.0 * x**2 + 6.0 * x**3, np.where(x <= 1.0, 2.0 * (1.0 - x) ** 3, 0.0))


def _long_run_covariance(deviations: np.ndarray) -> np.ndarray:
    """Long-run covariance of a (T, p) mean-zero series: VAR(1) prewhitening with singular values
    capped at 0.97 (Andrews & Monahan 1992), a Parzen-kernel HAC estimate of the residuals with
    Andrews' (1991) AR(1) plug-in bandwidth and a T / (T - p) small-sample factor, recoloured."""
    lagged, current = deviations[:-1], deviations[1:]
    coef = np.linalg.lstsq(lagged, current, rcond=None)[0].T                   # (p, p)
    u, s, vt = np.linalg.svd(coef)
    var1 = u @ np.diag(np.minimum(s, _MAX_PREWHITENING_ROOT)) @ vt
    white = current - lagged @ var1.T                                          # (T - 1, p)
    n_obs, dim = white.shape

    rho = (white[1:] * white[:-1]).sum(axis=0) / (white[:-1] ** 2).sum(axis=0)
    innovation_var = np.mean((white[1:] - rho * white[:-1]) ** 2, axis=0)
    alpha = (np.sum(4.0 * rho**2 * innovation_var**2 / (1.0 - rho) ** 8)
             / np.sum(innovation_var**2 / (1.0 - rho) ** 4))
    bandwidth = _PARZEN_BANDWIDTH * (alpha * n_obs) ** 0.2

    psi = white.T @ white / n_obs
    for lag in range(1, min(int(np.ceil(bandwidth)), n_obs)):
        gamma = white[lag:].T @ white[:-lag] / n_obs
        psi += _parzen(lag / bandwidth) * (gamma + gamma.T)
    psi *= n_obs / (n_obs - dim)
    recolour = np.linalg.inv(np.eye(dim) - var1)
    return recolour @ psi @ recolour.T


def sharpe_block_length(returns: np.ndarray) -> int:
    """Default circular-bootstrap block length for Sharpe-ratio inference on (T,) or (T, k)
    returns: the largest of arch's optimal circular block lengths (Politis & White 2004; Patton,
    Politis & White 2009) over the moment series r and r^2 that the Sharpe ratio is a function of,
    rounded up. Ledoit & Wolf's own choice, a calibration by simulation, would cost a bootstrap
    per candidate length."""
    r = np.asarray(returns, dtype=np.float64).reshape(len(returns), -1)
    lengths = optimal_block_length(np.concatenate([r, r**2], axis=1))["circular"]
    return max(1, int(np.ceil(lengths.max())))


def _resampled_t_statistics(excess: np.ndarray, signs: np.ndarray, theta: float, block: int,
                            n_resamples: int, seed: int | np.random.Generator,
                            chunk_size: int) -> np.ndarray:
    """(R,) |theta* - theta| / se* over circular-block resamples of `excess` (T, k), each cut to
    its l = T // b whole blocks; se* = sqrt(g*' Psi* g* / (l b)) with the block-bootstrap
    covariance Psi* = mean over blocks j of zeta_j zeta_j', zeta_j = sqrt(b) (block mean of y* -
    mean of y*) (Ledoit & Wolf 2008, §3.2). NaN for a resample in which a series is constant (its
    blocks all drawn from a flat stretch, say a book out of the market): it has no Sharpe ratio."""
    n_blocks = excess.shape[0] // block
    kept = n_blocks * block
    draws = CircularBlockBootstrap(block, excess, seed=np.random.default_rng(seed)).bootstrap(n_resamples)
    t_star = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk_size):
        count = min(chunk_size, n_resamples - start)
        paths = np.stack([next(draws)[0][0][:kept] for _ in range(count)])    # (c, l b, k)
        sharpe = _per_bar_sharpe(paths.transpose(1, 0, 2).reshape(kept, -1))  # (c k,)
        theta_star = sharpe.reshape(count, -1) @ signs
        y_star, g_star = _moments_and_gradient(paths, signs)                 # (c, l b, 2k), (c, 2k)
        zeta = np.sqrt(block) * (y_star - y_star.mean(axis=1, keepdims=True)).reshape(
            count, n_blocks, block, -1).mean(axis=2)                           # (c, l, 2k)
        se_star = np.sqrt(np.mean(np.einsum("clm,cm->cl", zeta, g_star) ** 2, axis=1) / kept)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star[start:start + count] = np.abs(theta_star - theta) / se_star
    return t_star


def _studentised_bootstrap(excess: np.ndarray, signs: np.ndarray, periods_per_year: float,
                           block_length: int | None, n_resamples: int,
                           seed: int | np.random.Generator, confidence: float,
                           chunk_size: int) -> SharpeInference:
    """Ledoit & Wolf (2008, §3.2) for theta = sum_i signs_i SR_i of the columns of `excess`: the
    observed theta is studentised with the HAC standard error, each resample with its
    block-bootstrap one. p = (1 + #{t* >= |theta| / se}) / (R + 1); the interval is
    theta +- q se, q the `confidence` quantile of t*. Resamples without a t* (a constant series)
    are left out and `resamples` counts those kept; a constant observed series is an error."""
    n_bars = excess.shape[0]
    constant = np.flatnonzero(excess.std(axis=0) == 0)
    if constant.size:
        raise ValueError(f"series {constant[0]} is constant over its {n_bars} bars: it has no Sharpe ratio")
    block = sharpe_block_length(excess) if block_length is None else int(block_length)
    if block < 1 or n_bars // block < 2:
        raise ValueError(f"block_length must be in 1 .. {n_bars // 2} for {n_bars} bars, got {block_length}")
    if n_resamples < 1 or chunk_size < 1:
        raise ValueError(f"n_resamples and chunk_size must be >= 1, got {n_resamples} and {chunk_size}")
    theta = _per_bar_sharpe(excess) @ signs
    y, gradient = _moments_and_gradient(excess, signs)
    se = np.sqrt(gradient @ _long_run_covariance(y - y.mean(axis=0)) @ gradient / n_bars)
    t_star = _resampled_t_statistics(excess, signs, theta, block, n_resamples, seed, chunk_size)
    t_star = t_star[np.isfinite(t_star)]
    if t_star.size == 0:
        raise ValueError(f"each of the {n_resamples} block resamples (block {block}) holds a constant "
                         f"series: too few bars that move for this block length")

    p_value = (1.0 + np.sum(t_star >= abs(theta) / se)) / (t_star.size + 1.0)
    q = np.quantile(t_star, confidence)
    scale = np.sqrt(periods_per_year)
    return SharpeInference(estimate=float(theta * scale), standard_error=float(se * scale),
                           statistic=float(theta / se), p_value=float(p_value),
                           interval=(float((theta - q * se) * scale), float((theta + q * se) * scale)),
                           resamples=int(t_star.size))


def ledoit_wolf_test(strategy: np.ndarray, baseline: np.ndarray, block_length: int | None = None,
                     n_resamples: int = 10_000, seed: int | np.random.Generator = 0,
                     risk_free: float = 0.0, periods_per_year: float = metrics.TRADING_DAYS,
                     confidence: float = 0.95, chunk_size: int = 250) -> SharpeInference:
    """Ledoit & Wolf (2008) studentised circular block bootstrap test of equal Sharpe ratios, with
    a confidence interval for the difference. Assumes only that the paired returns are stationary
    and weakly dependent. `block_length` defaults to `sharpe_block_length`; results depend on
    `seed` alone, not on `chunk_size` (which bounds memory at about chunk_size * T * 4 floats)."""
    excess = _excess_returns([strategy, baseline], risk_free, periods_per_year)
    return _studentised_bootstrap(excess, np.array([1.0, -1.0]), periods_per_year, block_length,
                                  n_resamples, seed, confidence, chunk_size)


def sharpe_confidence_interval(returns: np.ndarray, block_length: int | None = None,
                               n_resamples: int = 10_000, seed: int | np.random.Generator = 0,
                               risk_free: float = 0.0, periods_per_year: float = metrics.TRADING_DAYS,
                               confidence: float = 0.95, chunk_size: int = 250) -> SharpeInference:
    """Studentised circular block bootstrap interval for one Sharpe ratio (Ledoit & Wolf 2008,
    §3.2, with a single series), with the test of H0: SR = 0. Same assumptions as
    `ledoit_wolf_test`."""
    excess = _excess_returns([returns], risk_free, periods_per_year)
    return _studentised_bootstrap(excess, np.array([1.0]), periods_per_year, block_length,
                                  n_resamples, seed, confidence, chunk_size)
