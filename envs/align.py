"""Calendar alignment of validated bar tables into the (T, N, 5) panel of a MarketData.

The calendar is the union of every instrument's timestamps inside the window they all cover
(latest first bar to earliest last bar): forex trades on days the indices do not, and the indices
keep their last close on those days. A cell an instrument did not trade is forward-filled from its
last bar (open = high = low = close = last close, volume 0) and flagged FORWARD_FILLED; a run of
more than `ffill_limit` such cells is an error, never silent filling. Macro series are joined as of
each timestamp (last value stamped <= t), with NaN before a series starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.market_data import FORWARD_FILLED, OBSERVED, DataValidationError
from envs.validation import BarTable


def common_calendar(tables: list[BarTable]) -> pd.DatetimeIndex:
    """Union of timestamps within the window every instrument covers; error if some do not overlap."""
    starts = [t.frame.index[0] for t in tables]
    ends = [t.frame.index[-1] for t in tables]
    start, end = max(starts), min(ends)
    if start >= end:
        late = tables[int(np.argmax(starts))]
        early = tables[int(np.argmin(ends))]
        overlap = "no overlap" if start > end else "one common bar only, at least 2 are needed"
        raise DataValidationError(
            f"{late.source}, line {int(late.lines[0])}: column 'timestamp': {late.symbol} starts at "
            f"{late.frame.index[0]}, {'after' if start > end else 'where'} {early.symbol} ({early.source}, "
            f"line {int(early.lines[-1])}) ends at {early.frame.index[-1]}: {overlap}")
    calendar = tables[0].frame.index
    for table in tables[1:]:
        calendar = calendar.union(table.frame.index)
    return calendar[(calendar >= start) & (calendar <= end)]


def align_bars(tables: list[BarTable], ffill_limit: int) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Timestamps (T,), OHLCV (T, N, 5) float64 and quality flags (T, N) uint8 on one calendar."""
    calendar = common_calendar(tables)
    T, N = len(calendar), len(tables)
    ohlcv = np.empty((T, N, 5))
    quality = np.full((T, N), OBSERVED, dtype=np.uint8)
    for i, table in enumerate(tables):
        frame = table.frame.reindex(calendar)
        missing = frame["close"].isna().to_numpy()
        if missing[0]:
            # no bar at the window's first timestamp: carry the last earlier close into it
            frame.iloc[0, frame.columns.get_loc("close")] = table.frame.loc[:calendar[0], "close"].iloc[-1]
        _check_gaps(missing, ffill_limit, table, calendar)
        close = frame["close"].ffill().to_numpy()
        ohlcv[:, i, 3] = close
        for k, name in enumerate(("open", "high", "low")):
            values = frame[name].to_numpy()
            ohlcv[:, i, k] = np.where(missing, close, values) if table.has_ohlc else np.nan
        volume = frame["volume"].to_numpy()
        ohlcv[:, i, 4] = np.where(missing, 0.0, volume) if table.has_volume else np.nan
        quality[missing, i] = FORWARD_FILLED
    return calendar, ohlcv, quality


def _check_gaps(missing: np.ndarray, limit: int, table: BarTable, calendar: pd.DatetimeIndex) -> None:
    run = 0
    for t, gap in enumerate(missing):
        run = run + 1 if gap else 0
        if run > limit:
            first = t - run + 1
            before = int(table.frame.index.searchsorted(calendar[first])) - 1       # its last bar before the gap
            raise DataValidationError(
                f"{table.source}, line {int(table.lines[before])}: column 'timestamp': {table.symbol} has no "
                f"bar for {run} consecutive calendar steps from {calendar[first]}, after this line's "
                f"{table.frame.index[before]} (forward-fill limit {limit}); raise ffill_limit or fix the data")


def align_series(series: dict[str, pd.Series], calendar: pd.DatetimeIndex) -> np.ndarray:
    """(T, M) macro values as of each calendar timestamp: the last value stamped <= t."""
    columns = []
    for name, values in series.items():
        values = values.dropna().sort_index()
        if values.empty:
            raise DataValidationError(f"macro series '{name}' has no values")
        positions = values.index.searchsorted(calendar, side="right") - 1
        column = np.where(positions >= 0, values.to_numpy(dtype=np.float64)[np.maximum(positions, 0)], np.nan)
        columns.append(column)
    return np.column_stack(columns) if columns else np.zeros((len(calendar), 0))
