"""Real sample universes from market data that installed packages ship (the `samples` extra).

    us_equity_sectors  20 US stocks and the S&P 500 index, daily closes 1990-2022 (skfolio);
                       stocks grouped into domains by GICS sector. Closes only: no OHLC, no volume.
    us_markets         S&P 500 and NASDAQ Composite daily OHLCV 1999-2018, WTI crude daily closes
                       (arch), with VIX (daily, from 2014 only in arch's file) and the Moody's
                       BAA-AAA credit spread (monthly, stamped at month end) as macro.
    eurusd_hourly      EURUSD hourly ask OHLCV (gym-anytrading; its file covers 2017).
The package files are read in place through the same validation as user files; nothing is
downloaded. A missing package raises an ImportError that names the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from envs.align import align_bars, align_series
from envs.costs import CostConfig, resolve_costs
from envs.files import read_table, read_wide_closes
from envs.market_data import DataValidationError, MarketData
from envs.validation import BarTable, parse_timestamps, validate_bars

GICS_SECTORS: dict[str, str] = {
    "AAPL": "information_technology", "AMD": "information_technology", "MSFT": "information_technology",
    "BAC": "financials", "JPM": "financials",
    "BBY": "consumer_discretionary", "HD": "consumer_discretionary",
    "CVX": "energy", "RRC": "energy", "XOM": "energy",
    "GE": "industrials",
    "JNJ": "health_care", "LLY": "health_care", "MRK": "health_care", "PFE": "health_care",
    "UNH": "health_care",
    "KO": "consumer_staples", "PEP": "consumer_staples", "PG": "consumer_staples",
    "WMT": "consumer_staples",
}


def package_file(module: str, *parts: str) -> Path:
    """Path of a data file shipped inside an installed package."""
    try:
        package = importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"sample data needs the '{module.split('.')[0]}' package: "
                          "pip install -e '.[samples]'") from error
    return Path(package.__file__).parent.joinpath(*parts)


@dataclass(frozen=True)
class SampleUniverse:
    """How to build one sample universe: its bar tables, macro series and metadata."""

    tables: Callable[[], list[BarTable]]
    symbols: tuple[str, ...]
    domains: tuple[str, ...]
    asset_classes: tuple[str, ...]
    bars_per_year: float
    macro: Callable[[], dict[str, pd.Series]]
    monthly: tuple[str, ...]
    notes: str
    ffill_limit: int = 3


def _us_equity_sectors() -> list[BarTable]:
    stocks = package_file("skfolio.datasets.data", "sp500_dataset.csv.gz")
    index = package_file("skfolio.datasets.data", "sp500_index.csv.gz")
    tables = read_wide_closes(stocks, list(GICS_SECTORS), {"date": "timestamp"}, "%Y-%m-%d")
    return tables + read_wide_closes(index, ["SP500"], {"date": "timestamp"}, "%Y-%m-%d")


def _arch_bars(name: str, symbol: str) -> BarTable:
    path = package_file(f"arch.data.{name}", f"{name}.csv.gz")
    frame, lines = read_table(path)
    frame = frame.drop(columns=["Adj Close"]).rename(columns={"Date": "timestamp"})
    return validate_bars(frame, symbol, str(path), lines, "%m/%d/%Y")


def _wti_closes() -> BarTable:
    path = package_file("arch.data.wti", "wti.csv.gz")
    frame, lines = read_table(path)
    # FRED marks days without a price (holidays) with '.': those days have no bar
    priced = (frame["DCOILWTICO"] != ".").to_numpy()
    frame = frame.loc[priced].rename(columns={"Date": "timestamp", "DCOILWTICO": "close"})
    return validate_bars(frame.reset_index(drop=True), "WTI", str(path), lines[priced], "%m/%d/%Y")


def _us_markets() -> list[BarTable]:
    return [_arch_bars("sp500", "SP500"), _arch_bars("nasdaq", "NASDAQ"), _wti_closes()]


def _fred_series(path: Path, timestamp_format: str) -> pd.DataFrame:
    """Dated columns in FRED's export style, where '.' marks a day without a value (-> NaN)."""
    frame, lines = read_table(path)
    index = parse_timestamps(frame["Date"], str(path), lines, timestamp_format)
    raw = frame.drop(columns="Date").replace(".", np.nan)
    values = raw.apply(pd.to_numeric, errors="coerce")
    bad = (values.isna() & raw.notna()).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(f"{path}, line {lines[row]}: column '{raw.columns[col]}': "
                                  f"{raw.iat[row, col]!r} is not a number")
    return values.set_axis(index)


def _us_macro() -> dict[str, pd.Series]:
    vix = _fred_series(package_file("arch.data.vix", "vix.csv.gz"), "%m/%d/%Y")["vix"]
    default = _fred_series(package_file("arch.data.default", "default.csv.gz"), "%m/%d/%Y")
    # a monthly average is known only when its month has ended: stamp it at the month's last day
    month_end = default.index + pd.offsets.MonthEnd(0)
    spread = pd.Series((default["BAA"] - default["AAA"]).to_numpy(), index=month_end)
    return {"vix": vix, "credit_spread": spread}


def _eurusd_hourly() -> list[BarTable]:
    path = package_file("gym_anytrading.datasets", "data", "FOREX_EURUSD_1H_ASK.csv")
    frame, lines = read_table(path)
    # Dukascopy export: day-first timestamps in UTC
    return [validate_bars(frame.rename(columns={"Time": "timestamp"}), "EURUSD", str(path), lines,
                          "%d.%m.%Y %H:%M:%S.%f")]


SAMPLES: dict[str, SampleUniverse] = {
    "us_equity_sectors": SampleUniverse(
        _us_equity_sectors, (*GICS_SECTORS, "SP500"), (*GICS_SECTORS.values(), "index"),
        ("equity",) * len(GICS_SECTORS) + ("equity_index",), 252.0, dict, (),
        "skfolio sp500_dataset (adjusted closes) and sp500_index; closes only"),
    "us_markets": SampleUniverse(
        _us_markets, ("SP500", "NASDAQ", "WTI"), ("equity", "equity", "commodities"),
        ("equity_index", "equity_index", "commodity"), 252.0, _us_macro, ("credit_spread",),
        "arch sp500/nasdaq OHLCV, wti closes only (FRED DCOILWTICO), vix (from 2014), "
        "default (Moody's AAA/BAA monthly)",
        ffill_limit=5),  # the NYSE closed four days after 11 September 2001; WTI kept pricing
    "eurusd_hourly": SampleUniverse(
        _eurusd_hourly, ("EURUSD",), ("forex",), ("fx",), 24 * 5 * 52.0, dict, (),
        "gym-anytrading FOREX_EURUSD_1H_ASK (ask prices, tick volume)"),
}


def load_sample(name: str, costs: CostConfig | None = None, ffill_limit: int | None = None) -> MarketData:
    """Build a sample universe by name (see the module docstring for what each holds);
    `ffill_limit` defaults to the sample's own (3 bars, 5 for us_markets)."""
    if name not in SAMPLES:
        raise KeyError(f"unknown sample universe '{name}'; one of {sorted(SAMPLES)}")
    sample = SAMPLES[name]
    tables = sample.tables()
    limit = sample.ffill_limit if ffill_limit is None else ffill_limit
    timestamps, ohlcv, quality = align_bars(tables, limit)
    series = sample.macro()
    macro = align_series(series, timestamps)
    if macro.shape[1] and np.isnan(macro).all(axis=0).any():
        raise DataValidationError(f"sample '{name}': a macro series has no value inside the market window")
    return MarketData(
        name=name, timestamps=timestamps, symbols=sample.symbols, domains=sample.domains,
        asset_classes=sample.asset_classes, ohlcv=ohlcv,
        costs=resolve_costs(sample.symbols, sample.asset_classes, costs),
        bars_per_year=sample.bars_per_year, macro=macro, macro_names=tuple(series),
        macro_is_monthly=tuple(n in sample.monthly for n in series), quality=quality,
        has_ohlc=np.array([t.has_ohlc for t in tables]), has_volume=np.array([t.has_volume for t in tables]),
        attrs={"source": name, "notes": sample.notes})
