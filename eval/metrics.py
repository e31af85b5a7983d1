"""Performance and risk metrics, vectorised over many return series at once.

One convention everywhere (the one empyrical uses, so results compare with the literature):
    returns are simple per-bar returns `r` of shape (T,) or (T, S) for S series;
    `periods_per_year` bars per year (252 for daily bars);
    annualised return is geometric: (prod(1 + r))^(periods_per_year / T) - 1;
    volatility is the sample standard deviation (ddof = 1) times sqrt(periods_per_year);
    Sharpe = mean(r - rf) / std(r - rf, ddof=1) * sqrt(periods_per_year), with the risk-free rate
    `risk_free` given per year and converted per bar as (1 + rf)^(1 / periods_per_year) - 1;
    Sortino uses the downside deviation sqrt(mean(min(r - rf, 0)^2)) (all bars in the mean);
    drawdowns are measured on the compounded wealth curve starting at 1;
    VaR and CVaR at level `alpha` are historical, positive numbers (a loss of 2 % is 0.02), with
    numpy's linear quantile interpolation.
"""

from __future__ import annotations

import numpy as np

TRADING_DAYS = 252.0


def _as_2d(returns: np.ndarray) -> np.ndarray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    if r.ndim != 2 or r.shape[0] < 2:
        raise ValueError(f"returns must be (T,) or (T, S) with T >= 2, got shape {r.shape}")
    if not np.isfinite(r).all():
        raise ValueError("returns contain NaN or infinite values")
    return r


def per_bar_rate(risk_free: float, periods_per_year: float) -> float:
    """The per-bar rate that compounds to the annual rate `risk_free`."""
    return (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0


def wealth(returns: np.ndarray) -> np.ndarray:
    """(T, S) compounded wealth after each bar, starting from 1."""
    return np.cumprod(1.0 + _as_2d(returns), axis=0)


def cumulative_return(returns: np.ndarray) -> np.ndarray:
    return wealth(returns)[-1] - 1.0


def annual_return(returns: np.ndarray, periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    r = _as_2d(returns)
    final = np.prod(1.0 + r, axis=0)
    return np.where(final > 0, np.abs(final) ** (periods_per_year / r.shape[0]) - 1.0, -1.0)


def annual_volatility(returns: np.ndarray, periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    return _as_2d(returns).std(axis=0, ddof=1) * np.sqrt(periods_per_year)


def sharpe_ratio(returns: np.ndarray, risk_free: float = 0.0,
                 periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    excess = _as_2d(returns) - per_bar_rate(risk_free, periods_per_year)
    std = excess.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, excess.mean(axis=0) / std * np.sqrt(periods_per_year), np.nan)


def sortino_ratio(returns: np.ndarray, risk_free: float = 0.0,
                  periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    excess = _as_2d(returns) - per_bar_rate(risk_free, periods_per_year)
    downside = np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2, axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(downside > 0, excess.mean(axis=0) / downside * np.sqrt(periods_per_year), np.nan)


def drawdown(returns: np.ndarray) -> np.ndarray:
    """(T, S) drawdown after each bar as a negative fraction of the running peak (peak >= 1)."""
    w = wealth(returns)
    peak = np.maximum.accumulate(np.maximum(w, 1.0), axis=0)
    return w / peak - 1.0


def max_drawdown(returns: np.ndarray) -> np.ndarray:
    """Worst drawdown, a negative number (or 0)."""
    return drawdown(returns).min(axis=0)


def drawdown_durations(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series: the longest run of bars spent below a previous peak, and the bars from the
    maximum drawdown's trough back to its peak (NaN where it never recovered)."""
    dd = drawdown(returns)
    T, S = dd.shape
    longest = np.zeros(S)
    recovery = np.full(S, np.nan)
    for s in range(S):
        under = dd[:, s] < 0
        run = best = 0
        for flag in under:
            run = run + 1 if flag else 0
            best = max(best, run)
        longest[s] = best
        trough = int(np.argmin(dd[:, s]))
        if dd[trough, s] < 0:
            back = np.flatnonzero(dd[trough:, s] >= 0)
            if back.size:
                recovery[s] = back[0]
        else:
            recovery[s] = 0.0
    return longest, recovery


def calmar_ratio(returns: np.ndarray, periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    mdd = max_drawdown(returns)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mdd < 0, annual_return(returns, periods_per_year) / np.abs(mdd), np.nan)


def value_at_risk(returns: np.ndarray, alpha: float = 0.95) -> np.ndarray:
    """Historical VaR: minus the (1 - alpha) quantile of returns (linear interpolation)."""
    return -np.quantile(_as_2d(returns), 1.0 - alpha, axis=0)


def conditional_value_at_risk(returns: np.ndarray, alpha: float = 0.95) -> np.ndarray:
    """Historical CVaR: minus the mean of returns at or below the (1 - alpha) quantile."""
    r = _as_2d(returns)
    cutoff = np.quantile(r, 1.0 - alpha, axis=0)
    tail = np.where(r <= cutoff, r, np.nan)
    return -np.nanmean(tail, axis=0)


def hit_rate(returns: np.ndarray) -> np.ndarray:
    """Share of positive bars among bars with a non-zero return."""
    r = _as_2d(returns)
    active = (r != 0).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(active > 0, (r > 0).sum(axis=0) / active, np.nan)


def win_loss_ratio(returns: np.ndarray) -> np.ndarray:
    """Mean gain of winning bars over the mean absolute loss of losing bars."""
    r = _as_2d(returns)
    n_wins, n_losses = (r > 0).sum(axis=0), (r < 0).sum(axis=0)
    mean_win = np.where(r > 0, r, 0.0).sum(axis=0) / np.maximum(n_wins, 1)
    mean_loss = np.where(r < 0, -r, 0.0).sum(axis=0) / np.maximum(n_losses, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n_wins > 0) & (n_losses > 0), mean_win / mean_loss, np.nan)


def turnover(weights: np.ndarray, periods_per_year: float = TRADING_DAYS) -> np.ndarray:
    """Annualised one-way turnover: mean over bars of sum_i |w_t,i - w_t-1,i| / 2, times
    periods_per_year. `weights` is (T, N) or (T, S, N) of executed weights (fractions of equity)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w[:, None, :] if w.ndim == 2 else w
    traded = np.abs(np.diff(w, axis=0, prepend=np.zeros_like(w[:1]))).sum(axis=-1) / 2.0
    return traded.mean(axis=0) * periods_per_year


def exposure_by_domain(weights: np.ndarray, domain_index: np.ndarray, n_domains: int) -> np.ndarray:
    """Mean gross exposure (sum |w|) of each domain over time: (D,) for (T, N) weights,
    (S, D) for (T, S, N)."""
    w = np.abs(np.asarray(weights, dtype=np.float64))
    one_hot = np.eye(n_domains)[np.asarray(domain_index)]               # (N, D)
    return (w @ one_hot).mean(axis=0)


def summary(returns: np.ndarray, risk_free: float = 0.0, periods_per_year: float = TRADING_DAYS,
            alpha: float = 0.95) -> dict[str, np.ndarray]:
    """Every return-based metric above for each series, keyed by name."""
    longest, recovery = drawdown_durations(returns)
    return {
        "cum_return": cumulative_return(returns),
        "ann_return": annual_return(returns, periods_per_year),
        "ann_vol": annual_volatility(returns, periods_per_year),
        "sharpe": sharpe_ratio(returns, risk_free, periods_per_year),
        "sortino": sortino_ratio(returns, risk_free, periods_per_year),
        "calmar": calmar_ratio(returns, periods_per_year),
        "max_drawdown": max_drawdown(returns),
        "max_drawdown_duration": longest,
        "recovery_time": recovery,
        "var": value_at_risk(returns, alpha),
        "cvar": conditional_value_at_risk(returns, alpha),
        "hit_rate": hit_rate(returns),
        "win_loss": win_loss_ratio(returns),
    }
