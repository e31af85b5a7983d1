"""Reading the user's own bar files (CSV or Parquet) into validated `BarTable`s.

Three layouts:
    long            one table: timestamp, symbol, open, high, low, close, volume
    per_instrument  a folder with one file per instrument, named <SYMBOL>.csv or <SYMBOL>.parquet
    wide            one table: timestamp and one column of closes per instrument (closes only)
Files are only read; nothing the user gave is modified on disk.
"""

from __future__ import annotations

import codecs
import csv
import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from envs.market_data import DataValidationError
from envs.validation import BarTable, normalise_columns, require_columns, validate_bars

SUFFIXES = (".csv", ".csv.gz", ".parquet")


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The file's rows and the line (CSV, header = line 1) or 1-based row (Parquet) each came from."""
    if not path.is_file():
        raise DataValidationError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        try:
            frame = pd.read_parquet(path)
        except (ValueError, OSError) as error:          # pyarrow: not a Parquet file, corrupt
            raise DataValidationError(f"{path}: cannot be read as Parquet: {error}") from None
        frame, lines = frame.reset_index(drop=frame.index.name is None), np.arange(len(frame)) + 1
    elif name.endswith((".csv", ".csv.gz")):
        frame, lines = _read_csv(path)
    else:
        raise DataValidationError(f"{path}: unsupported file type; expected one of {SUFFIXES}")
    if len(frame) == 0:
        raise DataValidationError(f"{path}, line {1 if name.endswith('.parquet') else 2}: no rows after the "
                                  f"header, which names columns {[str(c) for c in frame.columns]}")
    return frame, lines


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV's cells as raw text (no NA parsing, so errors quote exactly what the file holds) and the
    line of each row; blank lines are skipped but counted."""
    try:
        raw = pd.read_csv(path, header=None, dtype=str, skipinitialspace=True, encoding="utf-8-sig",
                          keep_default_na=False, skip_blank_lines=False)
    except UnicodeDecodeError:
        raise _undecodable(path) from None
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{path}, line 1: empty file: no header line naming the columns "
                                  f"(such as 'timestamp' and 'close')") from None
    except pd.errors.ParserError as error:
        raise _malformed(path, error) from None
    except (ValueError, OSError) as error:
        raise DataValidationError(f"{path}: cannot be read: {error}") from None
    if any(raw[c].str.contains("\n", regex=False).any() for c in raw.columns):
        raise _malformed(path, None)
    body = raw.iloc[1:]
    filled = ~body.eq("").all(axis=1).to_numpy()                 # a blank line reads as a row of ''
    frame = body.loc[filled].set_axis([str(c) for c in raw.iloc[0]], axis=1).reset_index(drop=True)
    return frame, (np.arange(len(body)) + 2)[filled]


def _open(path: Path, mode: str = "rb", **kwargs):
    """The file opened for reading, decompressed when it is gzipped."""
    return (gzip.open if path.name.lower().endswith(".gz") else open)(path, mode, **kwargs)


def _undecodable(path: Path) -> DataValidationError:
    """The error naming the line and column of the file's first byte that is not UTF-8."""
    with _open(path) as handle:
        raw = handle.read().removeprefix(codecs.BOM_UTF8)
    header: list[str] = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            field = line[:error.start].count(b",")
            column = f"column {header[field]!r}" if field < len(header) else f"field {field + 1}"
            return DataValidationError(
                f"{path}, line {number}: {column}: byte 0x{line[error.start]:02x} is not UTF-8 (is the file "
                f"Latin-1, Windows-1252 or UTF-16?); save it as UTF-8")
        header = header or [cell.strip() for cell in text.split(",")]
    return DataValidationError(f"{path}: cannot be read as UTF-8")


def _malformed(path: Path, error: Exception | None) -> DataValidationError:
    """The error naming the first line with more fields than the header, or with a quoted field
    running over several lines (an unclosed quote), which pandas reports without the column."""
    with _open(path, "rt", encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle, skipinitialspace=True)
        header, end = next(rows), 1
        for row in rows:
            start, end = end + 1, rows.line_num
            spans = [k for k, cell in enumerate(row) if "\n" in cell]
            if spans:
                column = header[spans[0]] if spans[0] < len(header) else f"field {spans[0] + 1}"
                return DataValidationError(f"{path}, line {start}: column {column!r}: a quoted field runs over "
                                           f"lines {start}-{end} (an unclosed quote?)")
            if len(row) > len(header):
                return DataValidationError(
                    f"{path}, line {end}: {len(row)} fields where the header has {len(header)}: "
                    f"{row[len(header):]} after column {header[-1]!r} (a stray ',' or a thousands separator?)")
    return DataValidationError(f"{path}: cannot be read: {error}")


def read_long(path: Path, symbols: list[str], columns: dict[str, str] | None = None,
              timestamp_format: str | None = None, timezone: str = "UTC") -> list[BarTable]:
    """One long table holding every instrument; `symbols` fixes which and in what order."""
    frame, lines = read_table(path)
    frame = normalise_columns(frame, str(path), columns)
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
        tables.append(validate_bars(normalise_columns(frame, str(files[symbol]), columns), symbol,
                                    str(files[symbol]), lines, timestamp_format, timezone))
    return tables


def read_wide_closes(path: Path, symbols: list[str], columns: dict[str, str] | None = None,
                     timestamp_format: str | None = None, timezone: str = "UTC") -> list[BarTable]:
    """One table of closes, a column per instrument; instruments are closes-only."""
    frame, lines = read_table(path)
    frame = normalise_columns(frame, str(path), columns, lower=False)
    require_columns(frame, ("timestamp", *symbols), str(path))
    return [validate_bars(pd.DataFrame({"timestamp": frame["timestamp"], "close": frame[symbol]}),
                          symbol, f"{path} [{symbol}]", lines, timestamp_format, timezone)
            for symbol in symbols]
