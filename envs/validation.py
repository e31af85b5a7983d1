"""Validation of raw bar tables as read from a file, before any alignment or filling.

`validate_bars` takes one instrument's table (columns timestamp, open, high, low, close, volume,
of which open/high/low and volume may be absent) and returns it indexed by UTC timestamp, or raises
`DataValidationError` naming the source file, the line in that file (header = line 1) and the
column at fault. The caller's data is never modified. `check_suspicious_ticks` then looks for
one-bar spikes that revert (bad ticks) and warns about them or refuses them.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from envs.market_data import DataValidationError

PRICE_COLUMNS = ("open", "high", "low", "close")
# Magnitudes the float64 accounting stays far inside: two prices differ by at most 1e22, so equity,
# notionals and costs of any sane book stay below 1e40; a volume times a price below 1e30.
PRICE_BOUNDS = (1e-10, 1e12)
MAX_VOLUME = 1e18
# Timestamps are held as datetime64[ns]: 1677-09-22 to 2262-04-11 (a year typed 2921 is outside).
TIMESTAMP_BOUNDS = (pd.Timestamp.min.ceil("D").tz_localize("UTC"), pd.Timestamp.max.floor("D").tz_localize("UTC"))

SUSPICIOUS_TICK_MODES = ("warn", "reject", "ignore")
MAD_TO_SIGMA = 1.4826                   # median absolute deviation -> standard deviation (normal)
SCALE_WINDOW = 63                       # bars (about a quarter of days) the local deviation is taken over
# a spike's log return must also exceed this (about 10 %), so that flat or very quiet series,
# whose deviation is near 0, do not flag ordinary ticks
MIN_SPIKE_LOG_RETURN = 0.1
# the return back must undo at least this fraction of the jump, and be at most 1 / it times as large
REVERT_FRACTION = 0.5


class SuspiciousTickWarning(UserWarning):
    """A one-bar price spike that reverts on the next bar: most likely a bad tick in the file."""


@dataclass(frozen=True)
class BarTable:
    """One instrument's validated bars: float64 columns open/high/low/close/volume (NaN where
    the source has no such column), indexed by a strictly increasing UTC DatetimeIndex."""

    symbol: str
    source: str
    frame: pd.DataFrame
    has_ohlc: bool
    has_volume: bool
    lines: np.ndarray                   # (T,) the file line of each bar (header = line 1)


def _culprit(source: str, lines: np.ndarray, row: int) -> str:
    return f"{source}, line {int(lines[row])}"


def normalise_columns(frame: pd.DataFrame, source: str, mapping: dict[str, str] | None = None,
                      lower: bool = True) -> pd.DataFrame:
    """The frame with stripped (by default lower-cased) column names, the user's mapped onto ours
    (`{theirs: ours}`, matched ignoring case); raise if two columns land on one name (`Close`,
    `close`), since either could be the one the user meant."""
    ours = {str(k).strip().lower(): v for k, v in (mapping or {}).items()}
    names: list[str] = []
    seen: dict[str, str] = {}
    for column in map(str, frame.columns):
        name = ours.get(column.strip().lower(), column.strip().lower() if lower else column.strip())
        if name and name in seen:
            raise DataValidationError(
                f"{source}, line 1 (header): columns {seen[name]!r} and {column!r} both read as column "
                f"{name!r} (names are matched ignoring case and market.files.columns); drop or rename one")
        seen[name] = column
        names.append(name)
    return frame.set_axis(names, axis=1)


def require_columns(frame: pd.DataFrame, required: tuple[str, ...], source: str) -> None:
    """Raise naming each missing column and the closest existing one (a likely misspelling), or the
    likely delimiter when the whole header reads as one column."""
    found = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in found]
    if missing:
        hints = []
        for column in missing:
            close = difflib.get_close_matches(column, found, n=1, cutoff=0.6)
            hints.append(f"'{column}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        delimiter = next((d for d in ";\t|" if len(found) == 1 and d in found[0]), None)
        note = f"; the header is one column: is the file delimited by {delimiter!r}, not ','?" if delimiter else ""
        raise DataValidationError(f"{source}, line 1 (header): missing column {', '.join(hints)}; "
                                  f"found columns {found}{note}")


def _first_failing_row(fails, n: int) -> int:
    """The row k at which `fails(k + 1)` (a test of rows 0..k) first holds, by bisection; needs `fails(n)`."""
    low, high = 1, n
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(middle) else (middle + 1, high)
    return low - 1


def parse_timestamps(values: pd.Series, source: str, lines: np.ndarray,
                     timestamp_format: str | None = None, timezone: str = "UTC") -> pd.DatetimeIndex:
    """Parse to UTC; naive stamps are read in `timezone`. Raise naming the first stamp that does not
    parse, carries another UTC offset than the first, is ambiguous or skipped in `timezone` (a
    daylight-saving change), or lies outside the datetime64[ns] range (a typo in the year)."""
    culprit = lambda row: f"{_culprit(source, lines, row)}: column 'timestamp': {values.iloc[row]!r}"
    parse = lambda rows: pd.to_datetime(rows, format=timestamp_format, errors="coerce")

    def mixes_offsets(n: int) -> bool:
        try:
            parse(values.iloc[:n])
        except ValueError:
            return True
        return False

    if mixes_offsets(len(values)):
        row = _first_failing_row(mixes_offsets, len(values))
        raise DataValidationError(f"{culprit(row)} has another UTC offset than {values.iloc[0]!r} on line "
                                  f"{int(lines[0])}; write every stamp in UTC, or all with one offset")
    parsed = parse(values)
    if parsed.isna().any():
        row = int(np.argmax(parsed.isna().to_numpy()))
        like = f" like {values.iloc[0]!r} on line {int(lines[0])}" if row else ""
        raise DataValidationError(f"{_culprit(source, lines, row)}: column 'timestamp': cannot parse "
                                  f"{values.iloc[row]!r} as a date/time{like}")
    index = pd.DatetimeIndex(parsed)
    index = _localize(index, timezone, culprit) if index.tz is None else index.tz_convert("UTC")
    outside = (index < TIMESTAMP_BOUNDS[0]) | (index > TIMESTAMP_BOUNDS[1])
    if outside.any():
        row = int(np.argmax(outside))
        raise DataValidationError(f"{culprit(row)} is outside {TIMESTAMP_BOUNDS[0]:%Y-%m-%d} .. "
                                  f"{TIMESTAMP_BOUNDS[1]:%Y-%m-%d}, the range of timestamps (a typo in the year?)")
    return index.as_unit("ns")


def _localize(index: pd.DatetimeIndex, timezone: str, culprit) -> pd.DatetimeIndex:
    """Naive stamps read as wall-clock times in `timezone`, in UTC; raise on one that a
    daylight-saving change makes ambiguous (it occurs twice) or nonexistent (it is skipped)."""
    try:
        local = index.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
    except (KeyError, ValueError) as error:
        raise DataValidationError(f"market.files.timezone {timezone!r} is not a time zone ({error}); use an "
                                  f"IANA name such as 'UTC' or 'America/New_York'") from None
    if local.isna().any():
        row = int(np.argmax(local.isna()))
        skipped = index[row:row + 1].tz_localize(timezone, ambiguous=np.array([True]), nonexistent="NaT")
        why = ("does not exist (the clocks skip it)" if skipped.isna()[0]
               else "is ambiguous (the clocks go back: it occurs twice)")
        raise DataValidationError(
            f"{culprit(row)} {why} in {timezone}, the zone market.files.timezone reads naive stamps in; "
            f"write the stamps in UTC or with a UTC offset")
    return local.tz_convert("UTC")


def validate_bars(frame: pd.DataFrame, symbol: str, source: str, lines: np.ndarray | None = None,
                  timestamp_format: str | None = None, timezone: str = "UTC") -> BarTable:
    """Check one instrument's raw bars and return them as a `BarTable`.

    `lines[k]` is the file line of row k (defaults to k + 2: one header line, 1-based).
    Errors: missing or ambiguous columns, fewer than 2 rows, unparsable / out-of-range / duplicate /
    non-increasing timestamps, NaN, infinite, non-positive or absurd prices (outside PRICE_BOUNDS),
    high < low, open or close outside [low, high], negative, NaN or absurd volume (above MAX_VOLUME).
    """
    frame = normalise_columns(frame, source)
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    if len(frame) == 0:
        raise DataValidationError(f"{source}: no rows for {symbol}")
    require_columns(frame, ("timestamp", "close"), source)
    present = [c for c in ("open", "high", "low") if c in frame.columns]
    if present and len(present) < 3:
        require_columns(frame, ("open", "high", "low"), source)
    has_ohlc, has_volume = bool(present), "volume" in frame.columns
    if len(frame) == 1:
        raise DataValidationError(f"{_culprit(source, lines, 0)}: column 'timestamp': {symbol} has this one bar "
                                  f"only; at least 2 are needed (a return spans two closes)")

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
            what = "is missing or not a number" if np.isnan(values[row]) else "is not finite"
            raise DataValidationError(f"{_culprit(source, lines, row)}: column '{name}': "
                                      f"{frame[name].iloc[row]!r} {what}")
        columns[name] = values
    o, h, l, c, v = (columns[k] for k in ("open", "high", "low", "close", "volume"))
    low, high = PRICE_BOUNDS
    checks = []
    for name in PRICE_COLUMNS if has_ohlc else ("close",):
        checks += [(columns[name] <= 0, name, "is not positive"),
                   ((columns[name] < low) | (columns[name] > high), name,
                    f"is outside [{low:g}, {high:g}], the bound on prices that keeps the float64 accounting "
                    f"finite (check the units and the decimal point)")]
    if has_ohlc:
        checks += [(h < l, "high", "is below low"),
                   ((c > h) | (c < l), "close", "is outside [low, high]"),
                   ((o > h) | (o < l), "open", "is outside [low, high]")]
    if has_volume:
        checks += [(v < 0, "volume", "is negative"),
                   (v > MAX_VOLUME, "volume", f"is above {MAX_VOLUME:g}, the bound on volumes that keeps the "
                                              f"float64 accounting finite")]
    for bad, column, message in checks:
        if bad.any():
            row = int(np.argmax(bad))
            raise DataValidationError(f"{_culprit(source, lines, row)}: column '{column}' {message} "
                                      f"(open={o[row]}, high={h[row]}, low={l[row]}, close={c[row]}, "
                                      f"volume={v[row]})")
    clean = pd.DataFrame(columns, index=index)
    return BarTable(symbol=symbol, source=source, frame=clean, has_ohlc=has_ohlc, has_volume=has_volume,
                    lines=lines)


def suspicious_ticks(close: np.ndarray, mads: float) -> np.ndarray:
    """Rows whose close jumps by a log return beyond `mads` robust standard deviations of the
    series' log returns and beyond MIN_SPIKE_LOG_RETURN, and comes back on the next bar: the return
    back has the opposite sign and a comparable size (REVERT_FRACTION). The deviation is the median
    absolute deviation x 1.4826 over the SCALE_WINDOW bars around each bar (a data check, not a
    feature, so it may look ahead), floored at the whole series', so that a crisis's large swings
    are judged against their own volatility. A crash that stays down is not a spike; a spike on the
    first or last bar cannot be told apart from a move."""
    returns = np.diff(np.log(close))                             # (T - 1,): returns[k] is row k -> k + 1
    if returns.size < 2:
        return np.zeros(0, dtype=np.int64)
    absolute = np.abs(returns - np.median(returns))
    local = pd.Series(absolute).rolling(SCALE_WINDOW, center=True, min_periods=1).median().to_numpy()
    deviation = MAD_TO_SIGMA * np.maximum(local, np.median(absolute))    # (T - 1,)
    jump, back = returns[:-1], returns[1:]                       # into row k + 1, and out of it
    size, size_back = np.abs(jump), np.abs(back)
    spike = ((size > np.maximum(mads * deviation[:-1], MIN_SPIKE_LOG_RETURN)) & (np.sign(back) == -np.sign(jump))
             & (size_back >= REVERT_FRACTION * size) & (size >= REVERT_FRACTION * size_back))
    return np.flatnonzero(spike) + 1


def check_suspicious_ticks(table: BarTable, mode: str = "warn", mads: float = 10.0) -> None:
    """Warn about (mode 'warn') or refuse (mode 'reject') the table's one-bar spikes that revert,
    such as a price typed x100 for one bar: a small short there would ruin the book in simulation."""
    if mode not in SUSPICIOUS_TICK_MODES:
        raise DataValidationError(f"market.files.suspicious_ticks {mode!r} is not one of {SUSPICIOUS_TICK_MODES}")
    if not mads > 0:
        raise DataValidationError(f"market.files.suspicious_tick_mads={mads} must be > 0")
    if mode == "ignore":
        return
    close = table.frame["close"].to_numpy()
    rows = suspicious_ticks(close, mads)
    if rows.size == 0:
        return
    k = int(rows[0])
    others = f"; {rows.size - 1} more at line(s) {[int(table.lines[r]) for r in rows[1:11]]}" if rows.size > 1 else ""
    message = (f"{table.source}, line {int(table.lines[k])}: column 'close': {table.symbol} jumps from "
               f"{close[k - 1]:g} to {close[k]:g} and back to {close[k + 1]:g} on the next bar, beyond {mads:g} "
               f"robust deviations of its log returns: a suspicious tick{others}. Fix the file, or set "
               f"market.files.suspicious_ticks to 'ignore' (or 'reject' to refuse such files)")
    if mode == "reject":
        raise DataValidationError(message)
    warnings.warn(message, SuspiciousTickWarning, stacklevel=2)
