"""Behaviour policies: rule-based instrument signals that fill CQL's offline dataset in phase 1.

Each maps closes (T, N) to signals (T, N) in [-1, 1] where row t uses closes up to t only, so a
signal at t can trade at t+1 without look-ahead. Trend following and buy-and-hold are also
classical baselines.
"""

from __future__ import annotations

import numpy as np


def _volatility(log_returns: np.ndarray, window: int) -> np.ndarray:
    """Trailing standard deviation of log returns over `window` bars (NaN during warm-up)."""
    T, N = log_returns.shape
    out = np.full((T, N), np.nan)
    cumsum = np.cumsum(np.vstack([np.zeros((1, N)), log_returns]), axis=0)
    cumsq = np.cumsum(np.vstack([np.zeros((1, N)), log_returns**2]), axis=0)
    n = window
    mean = (cumsum[n:] - cumsum[:-n]) / n
    var = (cumsq[n:] - cumsq[:-n]) / n - mean**2
    out[n - 1:] = np.sqrt(np.maximum(var * n / (n - 1), 0.0))
    return out


def trend_following(close: np.ndarray, lookback: int = 60, vol_window: int = 20) -> np.ndarray:
    """tanh of the volatility-scaled return over `lookback` bars (time-series momentum)."""
    log_close = np.log(close)
    log_returns = np.diff(log_close, axis=0, prepend=log_close[:1])
    momentum = np.zeros_like(close)
    momentum[lookback:] = log_close[lookback:] - log_close[:-lookback]
    scale = _volatility(log_returns, vol_window) * np.sqrt(lookback)
    with np.errstate(divide="ignore", invalid="ignore"):
        signal = np.tanh(np.where(scale > 0, momentum / scale, 0.0))
    signal[:lookback] = 0.0
    return np.nan_to_num(signal)


def mean_reversion(close: np.ndarray, window: int = 20) -> np.ndarray:
    """Minus tanh of the z-score of the close against its trailing `window`-bar mean."""
    T, N = close.shape
    cumsum = np.cumsum(np.vstack([np.zeros((1, N)), close]), axis=0)
    cumsq = np.cumsum(np.vstack([np.zeros((1, N)), close**2]), axis=0)
    signal = np.zeros((T, N))
    mean = (cumsum[window:] - cumsum[:-window]) / window
    std = np.sqrt(np.maximum((cumsq[window:] - cumsq[:-window]) / window - mean**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, (close[window - 1:] - mean) / std, 0.0)
    signal[window - 1:] = -np.tanh(z)
    return signal


def buy_and_hold(close: np.ndarray) -> np.ndarray:
    return np.ones_like(close)


def random_signals(close: np.ndarray, rng: np.random.Generator, persistence: float = 0.9) -> np.ndarray:
    """Random positions with some persistence (an AR(1) in latent space, squashed by tanh), so
    the dataset covers held positions and not only noise."""
    T, N = close.shape
    latent = np.empty((T, N))
    latent[0] = rng.standard_normal(N)
    shocks = rng.standard_normal((T, N)) * np.sqrt(1 - persistence**2)
    for t in range(1, T):
        latent[t] = persistence * latent[t - 1] + shocks[t]
    return np.tanh(latent)


BEHAVIOURS: tuple[str, ...] = ("trend_following", "mean_reversion", "buy_and_hold", "random")


def behaviour_signals(name: str, close: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Signals (T, N) of the named behaviour policy."""
    if name == "trend_following":
        return trend_following(close)
    if name == "mean_reversion":
        return mean_reversion(close)
    if name == "buy_and_hold":
        return buy_and_hold(close)
    if name == "random":
        return random_signals(close, rng)
    raise KeyError(f"unknown behaviour policy '{name}'; one of {BEHAVIOURS}")
