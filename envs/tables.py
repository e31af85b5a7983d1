"""Per-bar tables the simulator kernels read, computed once from a `MarketData`.

Row t of every table holds only what is known at the close of bar t, with one exception named
by its prefix: `fill_*` row t describes the fill of a decision taken at bar t-1 (at open[t] for
`next_open`, at close[t-1] for `close`). Estimates are EWMAs over data <= t, so a table row never
changes when later bars do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from envs.config import EnvConfig
from envs.market_data import FORWARD_FILLED, OPEN, MarketData

TRADING_DAYS_PER_YEAR = 252.0


class MarketTables(NamedTuple):
    """What the kernels know about the market, bar by bar (T bars, N instruments)."""

    close: np.ndarray                  # (T, N) float64
    fill_price: np.ndarray             # (T, N) float64, row t: where a decision at t-1 fills
    fill_tradable: np.ndarray          # (T, N) bool, row t: that fill is at an observed price
    close_tradable: np.ndarray         # (T, N) bool, close[t] is observed (margin calls trade it)
    bar_vol: np.ndarray                # (T, N) float64, EWMA volatility of one bar's log return
    adv_notional: np.ndarray           # (T, N) float64, average daily traded notional (0: unknown)
    short_rate: np.ndarray             # (T,) float64, annual fraction; 0 where macro has none
    instrument_features: np.ndarray    # (T, N, F) float32
    global_observation: np.ndarray     # (T, C + G + K) float32: correlations, global, regimes


def ewma_decay(halflife: float) -> float:
    """Per-bar weight kept by an EWMA of half-life `halflife` bars."""
    return float(0.5 ** (1.0 / halflife))


@njit(cache=True)
def ewma(values: np.ndarray, decay: float, first_row: int) -> np.ndarray:
    """(T, N) bias-corrected EWMA of `values` over rows first_row..t; rows before are 0."""
    T, N = values.shape
    out = np.zeros((T, N))
    weighted = np.zeros(N)
    weight = 0.0
    for t in range(first_row, T):
        weight = decay * weight + 1.0
        for i in range(N):
            weighted[i] = decay * weighted[i] + values[t, i]
            out[t, i] = weighted[i] / weight
    return out


@njit(cache=True)
def ewma_correlation_triu(returns: np.ndarray, decay: float) -> np.ndarray:
    """(T, K(K-1)/2) float32 upper triangle (row-major, above the diagonal) of the EWMA
    correlation of zero-mean returns (T, K) over rows 1..t; 0 where a variance is still 0."""
    T, K = returns.shape
    out = np.zeros((T, K * (K - 1) // 2), dtype=np.float32)
    cov = np.zeros((K, K))
    for t in range(1, T):
        for a in range(K):
            for b in range(a, K):
                cov[a, b] = decay * cov[a, b] + (1.0 - decay) * returns[t, a] * returns[t, b]
        pair = 0
        for a in range(K):
            for b in range(a + 1, K):
                scale = np.sqrt(cov[a, a] * cov[b, b])
                out[t, pair] = cov[a, b] / scale if scale > 0.0 else 0.0
                pair += 1
    return out


def build_tables(market: MarketData, config: EnvConfig,
                 instrument_features: np.ndarray | None = None,
                 global_features: np.ndarray | None = None,
                 regime_probs: np.ndarray | None = None) -> MarketTables:
    """Tables for `market` under `config`; feature arrays are row-aligned with its timestamps.

    Without `instrument_features` the built-in set is used (`builtin_instrument_features`);
    without `global_features`, the macro series that are not monthly (monthly ones need the
    publication lag the feature pipeline applies), NaN before a series starts read as 0.
    """
    T, N = market.n_bars, market.n_instruments
    close = np.ascontiguousarray(market.close)
    log_returns = market.log_returns                                            # (T, N)
    observed = market.quality != FORWARD_FILLED                                 # (T, N)
    fill_price, fill_tradable = _fills(market, config.execution, observed)
    bar_vol = np.sqrt(ewma(log_returns**2, ewma_decay(config.vol_halflife), 1))
    traded = np.where(market.has_volume[None, :], np.nan_to_num(market.field("volume")) * close, 0.0)
    bars_per_day = market.bars_per_year / TRADING_DAYS_PER_YEAR
    adv_notional = ewma(traded, ewma_decay(config.volume_halflife), 0) * bars_per_day

    if "short_rate" in market.macro_names:
        short_rate = np.nan_to_num(market.macro[:, market.macro_names.index("short_rate")]) / 100.0
    else:
        short_rate = np.zeros(T)

    if instrument_features is None:
        instrument_features = builtin_instrument_features(market, config, bar_vol)
    instrument_features = _checked("instrument_features", instrument_features, (T, N, None))
    if global_features is None:
        daily = [m for m, monthly in enumerate(market.macro_is_monthly) if not monthly]
        global_features = np.nan_to_num(market.macro[:, daily])
    global_features = _checked("global_features", global_features, (T, None))
    regime_probs = _checked("regime_probs", np.zeros((T, 0)) if regime_probs is None else regime_probs,
                            (T, None))
    if config.meta_correlation == "domains":
        members = market.domain_index[:, None] == np.arange(len(market.domain_names))[None, :]
        log_returns = log_returns @ (members / members.sum(axis=0))               # (T, D)
    correlation = ewma_correlation_triu(log_returns, ewma_decay(config.correlation_halflife))
    return MarketTables(
        close=close, fill_price=fill_price, fill_tradable=fill_tradable,
        close_tradable=np.ascontiguousarray(observed), bar_vol=bar_vol, adv_notional=adv_notional,
        short_rate=short_rate, instrument_features=instrument_features,
        global_observation=np.ascontiguousarray(
            np.concatenate([correlation, global_features, regime_probs], axis=1)))


def _fills(market: MarketData, execution: str,
           observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fill price and tradability, row t for a decision at t-1.

    `close`: close[t-1]. `next_open`: open[t]; a closes-only instrument (no open) fills at the
    previous close, close[t-1], as under `close`. Either way a fill on a FORWARD_FILLED bar is
    no fill: the position is held unchanged (see `kernels.step`).
    """
    close = market.close
    fill_price = np.empty_like(close)                                           # (T, N)
    fill_tradable = np.empty_like(observed)                                     # (T, N)
    fill_price[0], fill_tradable[0] = close[0], False
    fill_price[1:], fill_tradable[1:] = close[:-1], observed[:-1]
    if execution == "next_open":
        at_open = market.has_ohlc
        fill_price[1:, at_open] = market.ohlcv[1:, at_open, OPEN]
        fill_tradable[1:, at_open] = observed[1:, at_open]
    return fill_price, fill_tradable


def builtin_instrument_features(market: MarketData, config: EnvConfig,
                                bar_vol: np.ndarray) -> np.ndarray:
    """(T, N, F) float32: the last `return_lags` log returns in units of the current bar
    volatility (clipped to +-10, 0 before data), the annualised volatility, and sentiment."""
    T, N = market.n_bars, market.n_instruments
    log_returns = market.log_returns
    safe_vol = np.where(bar_vol > 0, bar_vol, np.inf)                            # (T, N)
    lags = np.zeros((T, N, config.return_lags))
    for k in range(min(config.return_lags, T)):
        lags[k:, :, k] = log_returns[: T - k] / safe_vol[k:]
    columns = [np.clip(lags, -10.0, 10.0), (bar_vol * np.sqrt(market.bars_per_year))[..., None]]
    if market.sentiment is not None:
        columns.append(market.sentiment[..., None])
    return np.concatenate(columns, axis=2).astype(np.float32)


def _checked(name: str, values: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    """`values` as C-contiguous float32 after checking its shape and finiteness."""
    values = np.asarray(values)
    if values.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, values.shape)):
        expected = tuple("*" if s is None else s for s in shape)
        raise ValueError(f"{name} has shape {values.shape}, expected {expected} (rows = market bars)")
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} is not finite at row {row}")
    return np.ascontiguousarray(values, dtype=np.float32)
