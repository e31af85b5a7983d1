"""A small pattern library on OHLCV bars, batched over instruments: every input is (T, N) and
every signal is (T, N) in {-1, 0, +1}, the direction of the move the pattern expects (0: no
pattern, and during warm-up). Each signal at t uses bars <= t only.

    trend continuation     an established trend (fast EMA on one side of the slow EMA for the last
                           `persist` bars), a pullback (bar t-1 closed against it) and a resumption:
                           bar t closes beyond bar t-1's high (uptrend) or low (downtrend)
    breakout with volume   bar t closes above the highest high (below the lowest low) of the
                           `window` bars before it, on volume above `volume_ratio` times their mean
                           volume (never without volume data)
    band reversion         mean reversion at the band extremes: bar t closes below the lower
                           Bollinger band with RSI below `rsi_low` (+1), or above the upper band with
                           RSI above `rsi_high` (-1)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from features import indicators as ind

PATTERNS: tuple[str, ...] = ("trend", "breakout", "reversion")


def _previous(x: np.ndarray, lag: int, fill: float = np.nan) -> np.ndarray:
    """(T, N) x shifted down `lag` rows: row t holds x[t - lag]."""
    out = np.full_like(x, fill)
    out[lag:] = x[:-lag]
    return out


def trend_continuation(high: np.ndarray, low: np.ndarray, close: np.ndarray, fast: int = 10,
                       slow: int = 30, persist: int = 3) -> np.ndarray:
    """(T, N) +1 / -1 where an up / down trend resumes after a one-bar pullback (module docstring)."""
    if not 1 <= fast < slow or persist < 1:
        raise ValueError(f"trend_continuation: need 1 <= fast < slow and persist >= 1, got "
                         f"fast={fast}, slow={slow}, persist={persist}")
    trend = np.nan_to_num(np.sign(ind.ema(close, fast) - ind.ema(close, slow)))          # (T, N)
    established = trend != 0
    for lag in range(1, persist):
        established &= _previous(trend, lag, 0.0) == trend
    pullback = np.sign(_previous(close, 1) - _previous(close, 2)) == -trend
    resumes = np.where(trend > 0, close > _previous(high, 1), close < _previous(low, 1))
    return np.where(established & pullback & resumes, trend, 0.0)


def breakout_with_volume(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                         has_volume: np.ndarray, window: int = 20, volume_ratio: float = 1.5) -> np.ndarray:
    """(T, N) +1 / -1 where bar t breaks the prior `window` bars' range on heavy volume."""
    ind.check_window(window + 1, len(close), "breakout_with_volume")
    T, N = close.shape
    prior = lambda x, reduce: np.vstack([np.full((window, N), np.nan),
                                         reduce(sliding_window_view(x, window, axis=0)[:-1], axis=-1)])
    volume = np.where(has_volume[None, :], np.nan_to_num(volume), 0.0)
    mean_volume = prior(volume, np.mean)
    heavy = has_volume[None, :] & (mean_volume > 0) & (volume > volume_ratio * mean_volume)
    with np.errstate(invalid="ignore"):
        up = heavy & (close > prior(high, np.max))
        down = heavy & (close < prior(low, np.min))
    return up.astype(np.float64) - down.astype(np.float64)


def band_reversion(close: np.ndarray, window: int = 20, width: float = 2.0, rsi_window: int = 14,
                   rsi_low: float = 30.0, rsi_high: float = 70.0) -> np.ndarray:
    """(T, N) +1 below the lower band and oversold, -1 above the upper band and overbought."""
    percent_b, _ = ind.bollinger(close, window, width)
    rsi = ind.rsi(close, rsi_window)
    with np.errstate(invalid="ignore"):
        return (((percent_b < 0) & (rsi < rsi_low)).astype(np.float64)
                - ((percent_b > 1) & (rsi > rsi_high)).astype(np.float64))
