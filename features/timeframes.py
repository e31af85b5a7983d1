"""Multiple timeframes: features of coarser bars resampled from the base bars, aligned causally,
and the pattern library's signals on every timeframe with their agreement ("synergy").

A coarse timeframe of k base bars cuts the market into consecutive blocks of k bars from bar 0
(on the synthetic intraday calendar, k = 6 five-minute bars are the clock's half hours, k = 288
its days). Block j is coarse bar j: the open of its first base bar, the high and low over the
block, the close of its last bar, the volume summed. It closes with its last base bar, (j + 1) k - 1,
and is seen from that bar on: at base bar t the features are those of coarse bar (t + 1) // k - 1,
held until the next one closes (NaN before the first). An incomplete last block is never seen.

Per coarse timeframe k (columns `tf{k}_*`): the coarse bar's log return, its close against its EMA,
RSI, Bollinger %B and annualised close-to-close volatility, over `window` coarse bars. Per
timeframe, the base one included (k = 1), and pattern p: `pat_{p}_{k}` in {-1, 0, +1}
(`features.patterns`). `synergy_{p}` is the mean of pattern p's signals over the timeframes and
`synergy` the mean of them all: +1 when every pattern on every timeframe expects a rise, near 0
when they contradict each other.
"""

from __future__ import annotations

import numpy as np

from features import indicators as ind
from features.config import TimeframeConfig
from features.patterns import PATTERNS, band_reversion, breakout_with_volume, trend_continuation


def coarse_bars(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                volume: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """(J, N) open, high, low, close and volume of the J = T // k complete blocks of k base bars."""
    J = len(close) // k
    block = lambda x: x[: J * k].reshape(J, k, -1)                             # (J, k, N)
    return (open_[: J * k: k], block(high).max(axis=1), block(low).min(axis=1),
            close[k - 1: J * k: k], block(volume).sum(axis=1))


def align(coarse: np.ndarray, k: int, n_bars: int) -> np.ndarray:
    """(T, ...) the coarse rows as seen at each base bar: row (t + 1) // k - 1, NaN before row 0."""
    seen = (np.arange(n_bars) + 1) // k - 1                                     # (T,)
    out = np.full((n_bars, *coarse.shape[1:]), np.nan)
    out[seen >= 0] = coarse[seen[seen >= 0]]
    return out


def pattern_signals(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                    has_volume: np.ndarray, config: TimeframeConfig) -> dict[str, np.ndarray]:
    """Each pattern's (T, N) signal on one timeframe's bars."""
    c = config
    return {"trend": trend_continuation(high, low, close, c.ema_fast, c.ema_slow, c.trend_persist),
            "breakout": breakout_with_volume(high, low, close, volume, has_volume, c.window, c.volume_ratio),
            "reversion": band_reversion(close, c.window, c.band_width, c.rsi_window, c.rsi_low, c.rsi_high)}


def _coarse_indicators(close: np.ndarray, config: TimeframeConfig, bars_per_year: float) -> dict[str, np.ndarray]:
    """(J, N) the compact indicator set of one coarse timeframe's closes."""
    log_return = np.full_like(close, np.nan)
    log_return[1:] = np.log(close[1:] / close[:-1])
    return {"return": log_return, "ema_ratio": close / ind.ema(close, config.window) - 1.0,
            "rsi": ind.rsi(close, config.rsi_window),
            "bb_pctb": ind.bollinger(close, config.window, config.band_width)[0],
            "rv": ind.close_to_close_vol(close, config.window, bars_per_year)}


def check_timeframes(config: TimeframeConfig, n_bars: int, market: str) -> None:
    """Raise naming features.timeframes.bars when a timeframe is not a coarser whole number of
    base bars or leaves too few coarse bars for the windows."""
    need = max(config.window, config.ema_slow, config.rsi_window) + 1
    if len(set(config.bars)) != len(config.bars):
        raise ValueError(f"features.timeframes.bars={list(config.bars)} repeats a timeframe")
    for k in config.bars:
        if k < 2:
            raise ValueError(f"features.timeframes.bars={list(config.bars)}: {k} is not a coarser timeframe "
                             f"(a number of base bars >= 2)")
        if n_bars // k < need:
            raise ValueError(f"features.timeframes.bars={list(config.bars)}: {k} base bars leave "
                             f"{n_bars // k} coarse bars of the {n_bars} of market '{market}', fewer than the "
                             f"{need} its windows need")


def timeframe_features(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                       volume: np.ndarray, has_volume: np.ndarray, bars_per_year: float,
                       config: TimeframeConfig, market: str = "market") -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, N, C) coarse-timeframe indicators, pattern signals and synergies of (T, N) base bars
    (closes-only instruments with O/H/L set to the close; volume NaN where there is none), and
    their names (module docstring)."""
    T = len(close)
    check_timeframes(config, T, market)
    volume = np.where(has_volume[None, :], volume, 0.0)
    features: dict[str, np.ndarray] = {}
    signals = {f"{p}_1": s for p, s in pattern_signals(high, low, close, volume, has_volume, config).items()}
    for k in config.bars:
        bars = coarse_bars(open_, high, low, close, volume, k)
        for name, values in _coarse_indicators(bars[3], config, bars_per_year / k).items():
            features[f"tf{k}_{name}"] = align(values, k, T)
        for name, values in pattern_signals(*bars[1:], has_volume, config).items():
            signals[f"{name}_{k}"] = np.nan_to_num(align(values, k, T))
    features.update({f"pat_{name}": values for name, values in signals.items()})
    timeframes = [1, *config.bars]
    for p in PATTERNS:
        features[f"synergy_{p}"] = np.mean([signals[f"{p}_{k}"] for k in timeframes], axis=0)
    features["synergy"] = np.mean(list(signals.values()), axis=0)
    return np.stack(list(features.values()), axis=-1), tuple(features)
