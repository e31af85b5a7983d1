"""Macro features: VIX level, change and z-score, short rate, dollar momentum, credit spread.

Daily series are known at their bar's close. A monthly series is stamped at its period end but
published later: its value at bar t is the last one stamped at or before
`timestamps[t] - publication_lag_days`. Before a series begins its features are NaN, and an
`<name>_available` flag (0/1) says whether it has started.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.market_data import MarketData
from features.config import MacroConfig


def published(values: np.ndarray, timestamps: pd.DatetimeIndex, lag_days: int) -> np.ndarray:
    """(T,) the value of a period-end-stamped series as known at each bar after `lag_days`."""
    if lag_days < 0:
        raise ValueError(f"publication lag must be >= 0 days, got {lag_days}")
    visible_until = timestamps - pd.Timedelta(days=lag_days)
    source = timestamps.searchsorted(visible_until, side="right") - 1       # (T,) last visible row
    out = np.full(len(values), np.nan)
    known = source >= 0
    out[known] = values[source[known]]
    return out


def _change(x: np.ndarray, window: int) -> np.ndarray:
    out = np.full_like(x, np.nan)
    out[window:] = x[window:] - x[:-window]
    return out


def _zscore(x: np.ndarray, window: int) -> np.ndarray:
    series = pd.Series(x)
    rolling = series.rolling(window, min_periods=window)
    return ((series - rolling.mean()) / rolling.std()).to_numpy()


def _transforms(name: str, x: np.ndarray, config: MacroConfig) -> dict[str, np.ndarray]:
    """The features of one macro series by its name; unknown series give level and change."""
    w = config.change_window
    if name == "vix":
        return {"vix_level": x, "vix_change_1": _change(x, 1),
                f"vix_zscore_{config.zscore_window}": _zscore(x, config.zscore_window)}
    if name == "dollar_index":
        with np.errstate(invalid="ignore", divide="ignore"):
            return {f"dollar_momentum_{w}": _change(np.log(x), w),
                    f"dollar_momentum_{3 * w}": _change(np.log(x), 3 * w)}
    return {f"{name}_level": x, f"{name}_change_{w}": _change(x, w)}


def macro_features(market: MarketData, config: MacroConfig) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, G) macro features of `market` and their names (empty when it has no macro)."""
    columns: dict[str, np.ndarray] = {}
    for m, name in enumerate(market.macro_names):
        series = market.macro[:, m]
        if market.macro_is_monthly[m]:
            series = published(series, market.timestamps, config.publication_lag_days)
        columns.update(_transforms(name, series, config))
        columns[f"{name}_available"] = np.isfinite(series).astype(np.float64)
    if not columns:
        return np.zeros((market.n_bars, 0)), ()
    return np.column_stack(list(columns.values())), tuple(columns)
