"""Write and read a MarketData as Parquet (pyarrow), exactly, with a schema version.

A market is a folder of two files:
    bars.parquet    one row per (timestamp, instrument): open, high, low, close, volume, quality,
                    and, where present, sentiment and the ground truth's expected_return and
                    conditional_vol. Its schema metadata holds everything else as JSON (names,
                    domains, classes, costs, flags, attributes, regime names and correlations)
                    under the key `hmarl`, with `schema_version`.
    series.parquet  one row per timestamp: the macro series and, for synthetic markets, the regime.
Floats are stored as float64, so a round trip is bit-exact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from envs.costs import InstrumentCosts
from envs.market_data import OHLCV_FIELDS, DataValidationError, GroundTruth, MarketData

SCHEMA_VERSION = 1
METADATA_KEY = b"hmarl"


def write_market(market: MarketData, folder: str | Path) -> Path:
    """Write `market` to `folder` atomically (a temporary sibling folder renamed into place)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        _write_files(market, tmp)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_files(market: MarketData, folder: Path) -> None:
    T, N = market.n_bars, market.n_instruments
    columns: dict[str, pa.Array] = {
        "timestamp": pa.array(np.repeat(market.timestamps.asi8, N), pa.timestamp("ns", tz="UTC")),
        "symbol": pa.DictionaryArray.from_arrays(np.tile(np.arange(N, dtype=np.int32), T),
                                                 pa.array(market.symbols)),
    }
    for k, name in enumerate(OHLCV_FIELDS):
        columns[name] = pa.array(market.ohlcv[:, :, k].ravel())
    columns["quality"] = pa.array(market.quality.ravel())
    if market.sentiment is not None:
        columns["sentiment"] = pa.array(market.sentiment.ravel())
    gt = market.ground_truth
    if gt is not None:
        columns["expected_return"] = pa.array(gt.expected_returns.ravel())
        columns["conditional_vol"] = pa.array(gt.conditional_vol.ravel())
    metadata = {
        "schema_version": SCHEMA_VERSION, "name": market.name, "symbols": market.symbols,
        "domains": market.domains, "asset_classes": market.asset_classes,
        "bars_per_year": market.bars_per_year, "macro_names": market.macro_names,
        "macro_is_monthly": market.macro_is_monthly, "has_ohlc": market.has_ohlc.tolist(),
        "has_volume": market.has_volume.tolist(),
        "costs": {k: v.tolist() for k, v in market.costs.as_dict().items()},
        "attrs": market.attrs,
        "ground_truth": None if gt is None else {
            "regime_names": gt.regime_names, "regime_correlation": gt.regime_correlation.tolist()},
    }
    bars = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(metadata)})
    pq.write_table(bars, folder / "bars.parquet")
    series = {"timestamp": pa.array(market.timestamps.asi8, pa.timestamp("ns", tz="UTC"))}
    for m, name in enumerate(market.macro_names):
        series[f"macro/{name}"] = pa.array(market.macro[:, m])
    if gt is not None:
        series["regime"] = pa.array(gt.regime)
    pq.write_table(pa.table(series), folder / "series.parquet")


def read_market(folder: str | Path) -> MarketData:
    """Read a market written by `write_market`; raise naming the file if it is not one."""
    folder = Path(folder)
    bars_path, series_path = folder / "bars.parquet", folder / "series.parquet"
    for path in (bars_path, series_path):
        if not path.is_file():
            raise DataValidationError(f"{path}: missing; not a market folder written by envs.io")
    raw = pq.read_schema(bars_path).metadata or {}
    if METADATA_KEY not in raw:
        raise DataValidationError(f"{bars_path}: no '{METADATA_KEY.decode()}' metadata; "
                                  "not written by envs.io")
    meta = json.loads(raw[METADATA_KEY])
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataValidationError(f"{bars_path}: schema version {meta.get('schema_version')}, "
                                  f"this code reads version {SCHEMA_VERSION}; rebuild the file")
    bars = pq.read_table(bars_path)
    series = pq.read_table(series_path)
    N = len(meta["symbols"])
    timestamps = pd.DatetimeIndex(series.column("timestamp").to_pandas(), name="timestamp")
    T = len(timestamps)
    if bars.num_rows != T * N:
        raise DataValidationError(f"{bars_path}: {bars.num_rows} rows, expected {T} x {N}")
    grid = lambda name: bars.column(name).to_numpy().reshape(T, N)
    ohlcv = np.stack([grid(name) for name in OHLCV_FIELDS], axis=-1).astype(np.float64)
    macro = np.column_stack([series.column(f"macro/{n}").to_numpy() for n in meta["macro_names"]]) \
        if meta["macro_names"] else np.zeros((T, 0))
    truth = meta["ground_truth"]
    ground_truth = None if truth is None else GroundTruth(
        regime=series.column("regime").to_numpy().astype(np.int64),
        regime_names=tuple(truth["regime_names"]),
        expected_returns=grid("expected_return"), conditional_vol=grid("conditional_vol"),
        regime_correlation=np.asarray(truth["regime_correlation"], dtype=np.float64))
    names = bars.column_names
    return MarketData(
        name=meta["name"], timestamps=timestamps, symbols=tuple(meta["symbols"]),
        domains=tuple(meta["domains"]), asset_classes=tuple(meta["asset_classes"]), ohlcv=ohlcv,
        costs=InstrumentCosts(**{k: np.asarray(v, dtype=np.float64) for k, v in meta["costs"].items()}),
        bars_per_year=float(meta["bars_per_year"]), macro=np.asarray(macro, dtype=np.float64),
        macro_names=tuple(meta["macro_names"]), macro_is_monthly=tuple(meta["macro_is_monthly"]),
        sentiment=grid("sentiment").astype(np.float64) if "sentiment" in names else None,
        quality=grid("quality").astype(np.uint8), has_ohlc=np.asarray(meta["has_ohlc"], dtype=bool),
        has_volume=np.asarray(meta["has_volume"], dtype=bool), ground_truth=ground_truth,
        attrs=meta["attrs"])
