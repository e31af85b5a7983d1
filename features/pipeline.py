"""The causal feature pipeline: `MarketData` + `FeaturesConfig` in, float32 tensors out.

    instrument_features (T, N, F)   indicators, volatility, volume and sentiment per instrument, and
                                    (opt-in) coarse timeframes and pattern signals (features.timeframes)
    global_features     (T, G)      macro series and covariance summaries of the universe
    regime_probs        (T, K)      filtered HMM regime probabilities (K = 0 with regime: false)

Every value at t uses data stamped <= t; the HMM is the only fitted part and sees bars
< train_end. Features are then standardised by a causal rolling z-score, after which warm-up NaNs
and unavailable inputs are 0; `FeatureSet.warmup_bars` is the first bar at which every instrument
feature and covariance summary is standardised rather than 0 (a macro series that starts later
has its own `<name>_available` flag instead). Flags (`has_ohlc`, `has_volume`, `<macro>_available`) pass through
unscaled as 0/1, pattern signals and synergies (`pat_*`, `synergy*`) as they are, in [-1, 1].
Closes-only instruments (has_ohlc False): ATR uses the close-to-close true range |c_t - c_{t-1}|,
and the Parkinson and Garman-Klass volatilities fall back to close-to-close;
instruments without volume get 0 for OBV, VWAP and abnormal volume. Results are cached in the data
lake (`features/<market>-<key>/`, Parquet) under a hash of the data, config and train_end.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from envs.lake import DataLake, content_hash, file_fingerprint
from envs.market_data import MarketData
from features import indicators as ind
from features.config import FeaturesConfig, IndicatorConfig
from features.covariance import SUMMARY_NAMES, make_estimator, rolling_summaries
from features.macro import macro_features
from features.normalize import rolling_zscore
from features.regimes import RegimeDetector, regime_inputs
from features.sentiment import FEATURE_NAMES as SENTIMENT_NAMES
from features.sentiment import read_texts, sentiment_features
from features.timeframes import timeframe_features

# part of every cache key: raise it whenever a feature's numbers change (293f017 changed the rolling
# std's arithmetic without it, so entries cached before it kept serving the old values, one float32 ulp
# apart in 43 of 1.6M values of the paper market, bb_* and volume_z)
SCHEMA_VERSION = 4
FLAG_NAMES = ("has_ohlc", "has_volume")
SIGNAL_PREFIXES = ("pat_", "synergy")


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """Feature tensors aligned with `timestamps`, with their names and warm-up (the manifest)."""

    timestamps: pd.DatetimeIndex                  # (T,)
    symbols: tuple[str, ...]                      # (N,)
    instrument_features: np.ndarray               # (T, N, F) float32
    global_features: np.ndarray                   # (T, G) float32
    regime_probs: np.ndarray                      # (T, K) float32
    instrument_names: tuple[str, ...]             # (F,)
    global_names: tuple[str, ...]                 # (G,)
    regime_names: tuple[str, ...]                 # (K,)
    warmup_bars: int                              # rows before it hold warm-up zeros
    train_end: int                                # fitted parts saw bars [0, train_end)
    stage_seconds: dict[str, float] = field(default_factory=dict)   # how long each stage took


def is_flag(name: str) -> bool:
    """Whether a feature is a 0/1 flag, or a pattern signal or synergy in [-1, 1]
    (`features.timeframes`), that normalisation leaves alone."""
    return name in FLAG_NAMES or name.endswith("_available") or name.startswith(SIGNAL_PREFIXES)


def _ohlc(market: MarketData) -> tuple[np.ndarray, ...]:
    """(T, N) open, high, low, close with closes-only instruments' O/H/L set to the close."""
    close = market.close
    fill = lambda x: np.where(market.has_ohlc[None, :], x, close)
    return fill(market.field("open")), fill(market.field("high")), fill(market.field("low")), close


def _volume_features(market: MarketData, config: IndicatorConfig) -> dict[str, np.ndarray]:
    """OBV change, VWAP distance and abnormal volume; NaN for instruments without volume."""
    T, N = market.n_bars, market.n_instruments
    cols = np.flatnonzero(market.has_volume)
    out = {f"obv_change_{config.obv_window}": np.full((T, N), np.nan),
           f"vwap_ratio_{config.vwap_window}": np.full((T, N), np.nan),
           f"volume_z_{config.volume_window}": np.full((T, N), np.nan)}
    if cols.size == 0:
        return out
    _, h, l, c = (x[:, cols] for x in _ohlc(market))
    volume = market.field("volume")[:, cols]
    w = config.obv_window
    obv = ind.obv(c, volume)
    traded = ind.sma(volume, w) * w
    change = np.full_like(obv, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        change[w:] = np.where(traded[w:] > 0, (obv[w:] - obv[:-w]) / traded[w:], 0.0)
        vwap = ind.rolling_vwap(h, l, c, volume, config.vwap_window)
        out[f"vwap_ratio_{config.vwap_window}"][:, cols] = c / vwap - 1.0
    out[f"obv_change_{w}"][:, cols] = change
    out[f"volume_z_{config.volume_window}"][:, cols] = ind.volume_zscore(volume, config.volume_window)
    return out


def indicator_features(market: MarketData, config: IndicatorConfig) -> tuple[np.ndarray, tuple[str, ...]]:
    """(T, N, F) scale-free technical features of every instrument, with warm-up NaNs."""
    o, h, l, c = _ohlc(market)
    bpy = market.bars_per_year
    features: dict[str, np.ndarray] = {"log_return": market.log_returns}
    for w in config.ma_windows:
        features[f"sma_ratio_{w}"] = c / ind.sma(c, w) - 1.0
        features[f"ema_ratio_{w}"] = c / ind.ema(c, w) - 1.0
    line, signal, hist = ind.macd(c, *config.macd)
    features.update(macd=line / c, macd_signal=signal / c, macd_hist=hist / c)
    features[f"rsi_{config.rsi_window}"] = ind.rsi(c, config.rsi_window)
    percent_b, bandwidth = ind.bollinger(c, config.bollinger_window, config.bollinger_width)
    features[f"bb_pctb_{config.bollinger_window}"] = percent_b
    features[f"bb_bandwidth_{config.bollinger_window}"] = bandwidth
    features[f"atr_{config.atr_window}"] = ind.atr(h, l, c, config.atr_window) / c
    features.update(_volume_features(market, config))
    for horizon in config.horizons:
        features[f"roc_{horizon}"] = ind.roc(c, horizon)
        features[f"mom_{horizon}"] = ind.momentum(c, horizon) / c
    closes_only = ~market.has_ohlc[None, :]
    for w in config.volatility_windows:
        cc = ind.close_to_close_vol(c, w, bpy)
        features[f"rv_cc_{w}"] = cc
        features[f"rv_parkinson_{w}"] = np.where(closes_only, cc, ind.parkinson_vol(h, l, w, bpy))
        features[f"rv_gk_{w}"] = np.where(closes_only, cc, ind.garman_klass_vol(o, h, l, c, w, bpy))
    T, N = c.shape
    features["has_ohlc"] = np.broadcast_to(market.has_ohlc.astype(np.float64), (T, N))
    features["has_volume"] = np.broadcast_to(market.has_volume.astype(np.float64), (T, N))
    return np.stack(list(features.values()), axis=-1), tuple(features)


def _normalized(values: np.ndarray, names: tuple[str, ...], config: FeaturesConfig) -> np.ndarray:
    """float32 (T, ..., C): every column of `values` causally z-scored, flags kept as 0/1."""
    norm = config.normalization
    scaled = rolling_zscore(values, norm.window, norm.min_periods, norm.clip)
    for k, name in enumerate(names):
        if is_flag(name):
            scaled[..., k] = np.nan_to_num(values[..., k], nan=0.0)
    return scaled


def _first_standardised_row(values: np.ndarray, min_periods: int) -> int:
    """First row at which every column of `values` (T, ..., C) that is ever finite has
    `min_periods` finite values behind it (inputs have no gaps once they start)."""
    finite = np.isfinite(values).reshape(len(values), -1)                     # (T, columns)
    started = finite.any(axis=0)
    if not started.any():
        return 0
    return int(np.argmax(finite[:, started], axis=0).max()) + min_periods - 1


def resolve_train_end(market: MarketData, train_end: int | str | pd.Timestamp) -> int:
    """Bars in the training part: `train_end` itself when an int, else the number of bars
    stamped at or before that date (as `MarketData.split` counts them)."""
    if isinstance(train_end, (int, np.integer)):
        bars = int(train_end)
    else:
        stamp = pd.Timestamp(train_end)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        bars = int(market.timestamps.searchsorted(stamp, side="right"))
    if not 0 < bars <= market.n_bars:
        raise ValueError(f"train_end={train_end} leaves {bars} training bars of the "
                         f"{market.n_bars} of '{market.name}' (needs 1..{market.n_bars})")
    return bars


def fit_regimes(market: MarketData, config: FeaturesConfig, train_end: int) -> RegimeDetector:
    """The regime HMM of `config.regimes` fitted on the inputs of `market`'s bars [0, train_end)."""
    rc = config.regimes
    X, inputs = regime_inputs(market, rc.smoothing_window, train_end)
    return RegimeDetector(rc.min_states, rc.max_states, rc.n_iter, rc.n_init, seed=rc.seed).fit(X[:train_end], inputs)


def compute_features(market: MarketData, config: FeaturesConfig, train_end: int | str | pd.Timestamp,
                     texts: pd.DataFrame | None = None, detector: RegimeDetector | None = None) -> FeatureSet:
    """Build the `FeatureSet` of `market` without the cache (see module docstring); with
    `detector`, the regime probabilities are that fitted detector's (e.g. another market's of
    the same universe) instead of one fitted on `market`."""
    train_end = resolve_train_end(market, train_end)
    T = market.n_bars
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now

    instrument, instrument_names = indicator_features(market, config.indicators)
    lap("indicators")
    if config.sentiment:
        sentiment = sentiment_features(market, config.sentiment_model, texts)
        if sentiment is not None:
            instrument = np.concatenate([instrument, sentiment], axis=-1)
            instrument_names += SENTIMENT_NAMES
    lap("sentiment")
    if config.timeframes.bars:
        frames, frame_names = timeframe_features(*_ohlc(market), market.field("volume"), market.has_volume,
                                                 market.bars_per_year, config.timeframes, market.name)
        instrument = np.concatenate([instrument, frames], axis=-1)
        instrument_names += frame_names
        lap("timeframes")
    macro, macro_names = macro_features(market, config.macro)
    lap("macro")
    cov = config.covariance
    estimator = make_estimator(cov.estimator, cov.ewma_halflife)
    summaries = rolling_summaries(market.log_returns[1:], estimator, cov.window, cov.stride)
    summaries = np.vstack([np.full((1, len(SUMMARY_NAMES)), np.nan), summaries])   # row 0: no return
    lap("covariance")
    probs, regime_names = np.zeros((T, 0)), ()
    if config.regime:
        X, inputs = regime_inputs(market, config.regimes.smoothing_window, train_end)
        detector = detector or fit_regimes(market, config, train_end)
        if inputs != detector.input_names_:
            raise ValueError(f"market '{market.name}': regime inputs {inputs} differ from the fitted "
                             f"detector's {detector.input_names_}")
        probs, regime_names = detector.transform(X), detector.names_
    lap("regime")
    global_names = macro_names + SUMMARY_NAMES
    global_values = np.concatenate([macro, summaries], axis=1)
    warmup = max(_first_standardised_row(instrument[..., [not is_flag(n) for n in instrument_names]],
                                         config.normalization.min_periods),
                 _first_standardised_row(summaries, config.normalization.min_periods))
    result = FeatureSet(
        timestamps=market.timestamps, symbols=market.symbols,
        instrument_features=_normalized(instrument, instrument_names, config),
        global_features=_normalized(global_values, global_names, config),
        regime_probs=probs.astype(np.float32), instrument_names=instrument_names,
        global_names=global_names, regime_names=tuple(regime_names), warmup_bars=min(warmup, T),
        train_end=train_end, stage_seconds=seconds)
    lap("normalization")
    return result


def cache_key(market: MarketData, config: FeaturesConfig, train_end: int) -> str:
    """Hash of everything the features depend on: the market's arrays, config and train_end."""
    digest = hashlib.sha256()
    for array in (market.timestamps.asi8, market.ohlcv, market.macro, market.has_ohlc,
                  market.has_volume, market.sentiment if market.sentiment is not None else np.zeros(0)):
        digest.update(np.ascontiguousarray(array).tobytes())
    sources = {}
    if config.sentiment and config.sentiment_model.texts_path:
        sources["texts"] = file_fingerprint(config.sentiment_model.texts_path)
    if config.sentiment and config.sentiment_model.model_path:
        sources["model"] = file_fingerprint(Path(config.sentiment_model.model_path) / "config.json")
    settings = {k: v for k, v in vars(config).items() if k not in ("cache", "cache_root")}
    return content_hash(SCHEMA_VERSION, digest.hexdigest(), list(market.symbols), list(market.macro_names),
                        list(market.macro_is_monthly), settings, train_end, sources)


def _write(features: FeatureSet, folder: Path) -> None:
    T, N, F = features.instrument_features.shape
    index = pd.MultiIndex.from_product([features.timestamps, features.symbols], names=["timestamp", "symbol"])
    pd.DataFrame(features.instrument_features.reshape(T * N, F), index=index,
                 columns=list(features.instrument_names)).to_parquet(folder / "instrument.parquet")
    for name, values, columns in (("global", features.global_features, features.global_names),
                                  ("regime", features.regime_probs, features.regime_names)):
        pd.DataFrame(values, index=features.timestamps, columns=list(columns)).to_parquet(folder / f"{name}.parquet")
    manifest = {"schema_version": SCHEMA_VERSION, "warmup_bars": features.warmup_bars,
                "train_end": features.train_end}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _read(folder: Path, symbols: tuple[str, ...]) -> FeatureSet:
    instrument = pd.read_parquet(folder / "instrument.parquet")
    global_, regime = (pd.read_parquet(folder / f"{name}.parquet") for name in ("global", "regime"))
    T, N = len(global_), len(symbols)
    manifest = json.loads((folder / "manifest.json").read_text())
    return FeatureSet(
        timestamps=pd.DatetimeIndex(global_.index, name="timestamp"), symbols=symbols,
        instrument_features=instrument.to_numpy(np.float32).reshape(T, N, -1),
        global_features=global_.to_numpy(np.float32), regime_probs=regime.to_numpy(np.float32),
        instrument_names=tuple(instrument.columns), global_names=tuple(global_.columns),
        regime_names=tuple(regime.columns), warmup_bars=manifest["warmup_bars"],
        train_end=manifest["train_end"])


def build_features(market: MarketData, config: FeaturesConfig, train_end: int | str | pd.Timestamp,
                   detector: RegimeDetector | None = None) -> FeatureSet:
    """The `FeatureSet` of `market`, from the data-lake cache when `config.cache` is set and no
    fitted `detector` is given (see `compute_features`).

    Fitted parts (the HMM) see the training bars only: [0, train_end) for an int, those stamped
    at or before train_end for a date. The message table for text sentiment is read from
    `config.sentiment_model.texts_path`.
    """
    train_end = resolve_train_end(market, train_end)
    texts = None
    if config.sentiment and config.sentiment_model.texts_path:
        texts = read_texts(config.sentiment_model.texts_path)
    if not config.cache or detector is not None:
        return compute_features(market, config, train_end, texts, detector)
    built: list[FeatureSet] = []

    def build(folder: Path) -> None:
        built.append(compute_features(market, config, train_end, texts))
        _write(built[0], folder)

    started = time.perf_counter()
    folder = DataLake(Path(config.cache_root)).get_or_build(
        "features", market.name, cache_key(market, config, train_end), build)
    if built:
        return built[0]
    loaded = _read(folder, market.symbols)
    loaded.stage_seconds["cache_load"] = time.perf_counter() - started
    return loaded
