"""One entry point from a market config to a validated MarketData and its splits.

`load_market(config)` dispatches on `config.source`: the synthetic generator, a sample universe
shipped by a package, or the user's CSV / Parquet files with a domain map. Markets built from the
user's files are cached in the data lake's clean layer, keyed by a hash of the config and the
files' sizes and modification times, so a rerun reads Parquet instead of re-parsing and
re-validating. (The generator and the package samples build in about a second or less.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.align import align_bars
from envs.costs import ASSET_CLASSES, CostConfig, resolve_costs
from envs.files import read_long, read_per_instrument, read_wide_closes
from envs.io import SCHEMA_VERSION, read_market, write_market
from envs.lake import DataLake, content_hash, file_fingerprint
from envs.market_data import DataSplits, DataValidationError, MarketData
from envs.samples import SAMPLES, load_sample
from envs.synthetic import SyntheticConfig, generate
from envs.validation import check_suspicious_ticks

FILE_SOURCES = ("csv", "parquet")
SOURCES = ("synthetic", *SAMPLES, *FILE_SOURCES)


@dataclass
class FilesConfig:
    """The user's own files: where they are, how they are laid out, and the domain map."""

    path: str = ""
    layout: str = "long"                 # long | per_instrument | wide (closes only)
    domains: dict[str, list[str]] = field(default_factory=dict)     # domain -> symbols, in order
    asset_classes: dict[str, str] = field(default_factory=dict)     # symbol -> class
    default_asset_class: str = "equity"
    columns: dict[str, str] = field(default_factory=dict)           # the file's name -> ours
    timestamp_format: str | None = None
    timezone: str = "UTC"                # for naive timestamps
    bars_per_year: float = 252.0
    # a one-bar jump beyond suspicious_tick_mads robust deviations of the instrument's log returns
    # that reverts on the next bar (a bad tick): warn | reject (a DataValidationError) | ignore
    suspicious_ticks: str = "warn"
    suspicious_tick_mads: float = 10.0


@dataclass
class SplitConfig:
    """Chronological train / validation / test split; dates win over fractions when set."""

    train_end: str | None = None
    validation_end: str | None = None
    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    embargo_bars: int = 5


@dataclass
class MarketConfig:
    """Which market to load, its costs and splits (the `market/` config group)."""

    source: str = "synthetic"
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    files: FilesConfig = field(default_factory=FilesConfig)
    costs: CostConfig = field(default_factory=CostConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    ffill_limit: int | None = None       # None: the source's default (3 bars; 5 for us_markets)
    lake_dir: str = "data_lake"
    cache: bool = True


def load_market(config: MarketConfig) -> MarketData:
    """The validated market the config names (from the data lake when already built)."""
    if config.source not in SOURCES:
        raise KeyError(f"market.source '{config.source}' is not one of {SOURCES}")
    if config.source == "synthetic":
        return generate(config.synthetic, config.costs)
    if config.source in SAMPLES:
        return load_sample(config.source, config.costs, config.ffill_limit)
    inputs = _source_files(config)
    limit = 3 if config.ffill_limit is None else config.ffill_limit
    name = Path(config.files.path).stem      # the folder's name, or the file's without suffix
    build = lambda: load_files(config.files, config.costs, limit, name)
    if not config.cache:
        return build()
    key = content_hash(SCHEMA_VERSION, config.source, config.files, config.costs, limit,
                       [file_fingerprint(p) for p in inputs])
    entry = DataLake(Path(config.lake_dir)).get_or_build(
        "clean", config.source, key, lambda folder: write_market(build(), folder))
    return read_market(entry)


def split_market(market: MarketData, config: SplitConfig) -> DataSplits:
    if (config.train_end is None) != (config.validation_end is None):
        raise ValueError("market.split: set both train_end and validation_end, or neither")
    if config.train_end is not None:
        return market.split(config.train_end, config.validation_end, config.embargo_bars)
    return market.split_fractions(config.train_fraction, config.validation_fraction, config.embargo_bars)


def _source_files(config: MarketConfig) -> list[Path]:
    """The user's files a csv/parquet market reads."""
    path = Path(config.files.path)
    if not config.files.path or not path.exists():
        raise DataValidationError(f"market.files.path '{config.files.path}' does not exist")
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


def load_files(files: FilesConfig, costs: CostConfig | None = None, ffill_limit: int = 3,
               name: str = "files") -> MarketData:
    """The user's CSV or Parquet bars, validated and aligned under the configured domain map."""
    symbols, domains = [], []
    for domain, members in files.domains.items():
        if not members:
            raise DataValidationError(f"market.files.domains.{domain}: a domain with no instrument")
        symbols += list(members)
        domains += [domain] * len(members)
    if not symbols:
        raise DataValidationError("market.files.domains is empty: map each domain to its symbols")
    repeated = sorted({s for s in symbols if symbols.count(s) > 1})
    if repeated:
        raise DataValidationError(f"market.files.domains lists {repeated} in more than one place")
    classes = [files.asset_classes.get(s, files.default_asset_class) for s in symbols]
    for symbol, asset_class in zip(symbols, classes):
        if asset_class not in ASSET_CLASSES:
            raise DataValidationError(f"market.files.asset_classes.{symbol}: '{asset_class}' is not "
                                      f"one of {ASSET_CLASSES}")
    readers = {"long": read_long, "per_instrument": read_per_instrument, "wide": read_wide_closes}
    if files.layout not in readers:
        raise DataValidationError(f"market.files.layout '{files.layout}' is not one of {sorted(readers)}")
    tables = readers[files.layout](Path(files.path), symbols, files.columns, files.timestamp_format,
                                   files.timezone)
    for table in tables:
        check_suspicious_ticks(table, files.suspicious_ticks, files.suspicious_tick_mads)
    timestamps, ohlcv, quality = align_bars(tables, ffill_limit)
    return MarketData(
        name=name, timestamps=timestamps, symbols=tuple(symbols), domains=tuple(domains),
        asset_classes=tuple(classes), ohlcv=ohlcv,
        costs=resolve_costs(tuple(symbols), tuple(classes), costs), bars_per_year=files.bars_per_year,
        quality=quality, has_ohlc=np.array([t.has_ohlc for t in tables]),
        has_volume=np.array([t.has_volume for t in tables]),
        attrs={"source": "files", "path": str(Path(files.path).resolve()), "layout": files.layout})
