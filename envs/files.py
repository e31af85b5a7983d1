"""Reading the user's own bar files (CSV or Parquet) into validated `BarTable`s.

Three layouts:
    long            one table: timestamp, symbol, open, high, low, close, volume
    per_instrument  a folder with one file per instrument, named <SYMBOL>.csv or <SYMBOL>.parquet
    wide            one table: timestamp and one column of closes per instrument (closes only)
Files are only read; nothing the user gave is modified on disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from envs.market_data import DataValidationError
from envs.validation import BarTable, require_columns, validate_bars

SUFFIXES = (".csv", ".csv.gz", ".parquet")


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's rows and the line (CSV) or 1-based row (Parquet) each came from."""
    if not path.is_file():
        raise DataValidationError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            frame = pd.read_parquet(path)
            return frame.reset_index(drop=frame.index.name is None), np.arange(len(frame)) + 1
        if name.endswith((".csv", ".csv.gz")):
            # cells stay raw text (no NA parsing), so errors quote exactly what the file holds
            frame = pd.read_csv(path, dtype=str, skipinitialspace=True, encoding="utf-8-sig",
                                keep_default_na=False)
            return frame, np.arange(len(frame)) + 2
    except (ValueError, OSError) as error:          # pandas/pyarrow parse errors
        raise DataValidationError(f"{path}: cannot be read: {error}") from None
    raise DataValidationError(f"{path}: unsupported file type; expected one of {SUFFIXES}")


def _rename(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Lower-case, strip, then map the user's column names onto ours (`{theirs: ours}`)."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    return frame.rename(columns={k.lower(): v for k, v in columns.items()})


def read_long(path: Path, symbols: list[str], columns: dict[str, str] | None = None,
              timestamp_format: str | None = None, timezone: str = "UTC") -> list[BarTable]:
    """One long table holding every instrument; `symbols` fixes which and in what order."""
    frame, lines = read_table(path)
    frame = _rename(frame, columns or {})
    require_columns(frame, ("timestamp", "symbol"), str(path))
    present = frame["symbol"].astype(str).str.strip()
    unknown = sorted(set(present) - set(symbols))
    if unknown:
        row = int(np.flatnonzero(present.isin(unknown).to_numpy())[0])
        raise DataValidationError(f"{path}, line {lines[row]}: column 'symbol': {unknown} not in the "
                                  f"domain map of the config ({symbols})")
    tables = []
    for symbol in symbols:
        rows = (present == symbol).to_numpy()
        if not rows.any():
            raise DataValidationError(f"{path}: no rows for {symbol}, which the domain map names")
        tables.append(validate_bars(frame.loc[rows].drop(columns="symbol").reset_index(drop=True),
                                    symbol, str(path), lines[rows], timestamp_format, timezone))
    return tables


def read_per_instrument(folder: Path, symbols: list[str], columns: dict[str, str] | None = None,
                        timestamp_format: str | None = None, timezone: str = "UTC") -> list[BarTable]:
    """A folder with one file per instrument; every file must belong to a configured symbol."""
    if not folder.is_dir():
        raise DataValidationError(f"{folder}: no such folder")
    files = {p.name[: -len(s)]: p for p in sorted(folder.iterdir()) for s in SUFFIXES
             if p.name.lower().endswith(s)}
    unmapped = sorted(set(files) - set(symbols))
    if unmapped:
        raise DataValidationError(f"{folder}: files for {unmapped} have no domain in the config's "
                                  f"domain map ({symbols})")
    tables = []
    for symbol in symbols:
        if symbol not in files:
            raise DataValidationError(f"{folder}: no file for {symbol} (expected {symbol}.csv or "
                                      f"{symbol}.parquet)")
        frame, lines = read_table(files[symbol])
        tables.append(validate_bars(_rename(frame, columns or {}), symbol, str(files[symbol]), lines,
                                    timestamp_format, timezone))
    return tables


def read_wide_closes(path: Path, symbols: list[str], columns: dict[str, str] | None = None,
                     timestamp_format: str | None = None, timezone: str = "UTC") -> list[BarTable]:
    """One table of closes, a column per instrument; instruments are closes-only."""
    frame, lines = read_table(path)
    mapping = {k.lower(): v for k, v in (columns or {}).items()}
    frame = frame.rename(columns=lambda c: mapping.get(str(c).strip().lower(), str(c).strip()))
    require_columns(frame, ("timestamp", *symbols), str(path))
    return [validate_bars(pd.DataFrame({"timestamp": frame["timestamp"], "close": frame[symbol]}),
                          symbol, f"{path} [{symbol}]", lines, timestamp_format, timezone)
            for symbol in symbols]
