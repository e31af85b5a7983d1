"""Validation of raw bar tables as read from a file, before any alignment or filling.

`validate_bars` takes one instrument's table (columns timestamp, open, high, low, close, volume,
of which open/high/low and volume may be absent) and returns it indexed by UTC timestamp, or raises
`DataValidationError` naming the source file, the line in that file (header = line 1) and the
column at fault. The caller's data is never modified.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from envs.market_data import DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class BarTable:
    """One instrument's validated bars: float64 columns open/high/low/close/volume (NaN where
    the source has no such column), indexed by a strictly increasing UTC DatetimeIndex."""

    symbol: str
    source: str
    frame: pd.DataFrame
    has_ohlc: bool
    has_volume: bool


def _culprit(source: str, lines: np.ndarray, row: int) -> str:
    return f"{source}, line {int(lines[row])}"


def require_columns(frame: pd.DataFrame, required: tuple[str, ...], source: str) -> None:
    """Raise naming each missing column and the closest existing one (a likely misspelling)."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, [str(c) for c in frame.columns], n=1, cutoff=0.6)
            hints.append(f"'{column}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise DataValidationError(f"{source}: missing column {', '.join(hints)}; "
                                  f"found columns {[str(c) for c in frame.columns]}")


def parse_timestamps(values: pd.Series, source: str, lines: np.ndarray,
                     timestamp_format: str | None = None, timezone: str = "UTC") -> pd.DatetimeIndex:
    """Parse to UTC; naive stamps are read in `timezone`. Raise on the first unparsable value."""
    parsed = pd.to_datetime(values, format=timestamp_format, errors="coerce")
    if parsed.isna().any():
        row = int(np.argmax(parsed.isna().to_numpy()))
        raise DataValidationError(f"{_culprit(source, lines, row)}: column 'timestamp': cannot parse "
                                  f"{values.iloc[row]!r} as a date/time")
    index = pd.DatetimeIndex(parsed)
    index = index.tz_localize(timezone) if index.tz is None else index
    return index.tz_convert("UTC").as_unit("ns")


def validate_bars(frame: pd.DataFrame, symbol: str, source: str, lines: np.ndarray | None = None,
                  timestamp_format: str | None = None, timezone: str = "UTC") -> BarTable:
    """Check one instrument's raw bars and return them as a `BarTable`.

    `lines[k]` is the file line of row k (defaults to k + 2: one header line, 1-based).
    Errors: missing columns, unparsable / duplicate / non-increasing timestamps, NaN or
    non-positive prices, high < low, open or close outside [low, high], negative or NaN volume.
    """
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    if len(frame) == 0:
        raise DataValidationError(f"{source}: no rows for {symbol}")
    require_columns(frame, ("timestamp", "close"), source)
    present = [c for c in ("open", "high", "low") if c in frame.columns]
    if present and len(present) < 3:
        require_columns(frame, ("open", "high", "low"), source)
    has_ohlc, has_volume = bool(present), "volume" in frame.columns

    index = parse_timestamps(frame["timestamp"], source, lines, timestamp_format, timezone)
    stamps = index.asi8
    duplicated = index.duplicated()
    if duplicated.any():
        row = int(np.argmax(duplicated))
        first = int(np.flatnonzero(stamps == stamps[row])[0])
        raise DataValidationError(f"{_culprit(source, lines, row)}: column 'timestamp': duplicate "
                                  f"{index[row]} (first at line {int(lines[first])})")
    decreasing = np.flatnonzero(np.diff(stamps) <= 0)
    if decreasing.size:
        row = int(decreasing[0]) + 1
        raise DataValidationError(f"{_culprit(source, lines, row)}: column 'timestamp': {index[row]} "
                                  f"is not after the previous row's {index[row - 1]}")

    columns = {}
    for name in PRICE_COLUMNS + ("volume",):
        if name not in frame.columns:
            columns[name] = np.full(len(frame), np.nan)
            continue
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise DataValidationError(f"{_culprit(source, lines, row)}: column '{name}': "
                                      f"{frame[name].iloc[row]!r} is missing or not a number")
        columns[name] = values
    o, h, l, c, v = (columns[k] for k in ("open", "high", "low", "close", "volume"))
    checks = [(c <= 0, "close", "is not positive")]
    if has_ohlc:
        checks += [((o <= 0) | (h <= 0) | (l <= 0), "open/high/low", "has a non-positive price"),
                   (h < l, "high", "is below low"),
                   ((c > h) | (c < l), "close", "is outside [low, high]"),
                   ((o > h) | (o < l), "open", "is outside [low, high]")]
    if has_volume:
        checks.append((v < 0, "volume", "is negative"))
    for bad, column, message in checks:
        if bad.any():
            row = int(np.argmax(bad))
            raise DataValidationError(f"{_culprit(source, lines, row)}: column '{column}' {message} "
                                      f"(open={o[row]}, high={h[row]}, low={l[row]}, close={c[row]}, "
                                      f"volume={v[row]})")
    clean = pd.DataFrame(columns, index=index)
    return BarTable(symbol=symbol, source=source, frame=clean, has_ohlc=has_ohlc, has_volume=has_volume)
