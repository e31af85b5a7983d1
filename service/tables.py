"""The simulator's tables (`envs.tables.build_tables`) one row at a time, from the first row of a
walk's window: the same EWMAs of bar volatility, traded notional and return correlation, the
fills of the decision before, the short rate, and the feature rows the observation shows."""

from __future__ import annotations

import numpy as np

from envs.config import EnvConfig
from envs.tables import TRADING_DAYS_PER_YEAR, MarketTables, ewma_decay
from features.streaming import Bar, FeatureRow, Stream


class StreamingTables(Stream):
    """Rows of `MarketTables` for consecutive bars of a window."""

    def __init__(self, config: EnvConfig, has_ohlc: np.ndarray, has_volume: np.ndarray, bars_per_year: float,
                 macro_names: tuple[str, ...], domain_index: np.ndarray, n_domains: int) -> None:
        N = len(has_ohlc)
        self.at_open = np.asarray(has_ohlc, dtype=bool) & (config.execution == "next_open")
        self.has_volume = np.asarray(has_volume, dtype=bool)
        self.bars_per_day = bars_per_year / TRADING_DAYS_PER_YEAR
        self.vol_decay, self.volume_decay = ewma_decay(config.vol_halflife), ewma_decay(config.volume_halflife)
        self.correlation_decay = ewma_decay(config.correlation_halflife)
        self.short_rate = macro_names.index("short_rate") if "short_rate" in macro_names else -1
        if config.meta_correlation == "domains":
            members = np.asarray(domain_index)[:, None] == np.arange(n_domains)[None, :]
            self.domain_weights = members / members.sum(axis=0)                   # (N, D)
        else:
            self.domain_weights = np.zeros((0, 0))
        K = n_domains if config.meta_correlation == "domains" else N
        self.upper = np.triu_indices(K, k=1)
        self.diagonal_and_upper = np.triu_indices(K)
        self.vol_weighted, self.vol_weight = np.zeros(N), 0.0
        self.adv_weighted, self.adv_weight = np.zeros(N), 0.0
        self.covariance = np.zeros((K, K))
        self.previous_close = np.full(N, np.nan)
        self.previous_observed = np.ones(N, dtype=bool)
        self.t = 0

    def update(self, bar: Bar, features: FeatureRow) -> MarketTables:
        """This bar's row of every table, as (1, ...) arrays."""
        t = self.t
        self.t += 1
        close = np.asarray(bar.ohlcv[:, 3], dtype=np.float64)
        log_return = np.zeros(len(close)) if t == 0 else np.log(close / self.previous_close)
        previous_close = close if t == 0 else self.previous_close
        self.previous_close = close.copy()
        if t >= 1:                                           # envs.tables.ewma from row 1
            self.vol_weight = self.vol_decay * self.vol_weight + 1.0
            self.vol_weighted = self.vol_decay * self.vol_weighted + log_return**2
            bar_vol = np.sqrt(self.vol_weighted / self.vol_weight)
        else:
            bar_vol = np.zeros(len(close))
        traded = np.where(self.has_volume, np.nan_to_num(bar.ohlcv[:, 4]) * close, 0.0)
        self.adv_weight = self.volume_decay * self.adv_weight + 1.0
        self.adv_weighted = self.volume_decay * self.adv_weighted + traded
        adv = self.adv_weighted / self.adv_weight * self.bars_per_day
        fill_price = np.where(self.at_open, bar.ohlcv[:, 0], previous_close)
        short_rate = np.nan_to_num(bar.macro[self.short_rate]) / 100.0 if self.short_rate >= 0 else 0.0
        correlation = self._correlation(log_return if self.domain_weights.size == 0
                                        else (log_return[None] @ self.domain_weights)[0], t)
        glob = np.concatenate([correlation, features.global_, features.regime]).astype(np.float32)
        observed = np.ones(len(close), dtype=bool) if bar.observed is None else np.asarray(bar.observed, dtype=bool)
        fill_tradable = np.where(self.at_open, observed, self.previous_observed) & (t > 0)
        self.previous_observed = observed.copy()
        return MarketTables(
            close=close[None], fill_price=fill_price[None], fill_tradable=fill_tradable[None],
            close_tradable=observed[None], bar_vol=bar_vol[None], adv_notional=adv[None],
            short_rate=np.array([short_rate]), instrument_features=features.instrument[None],
            global_observation=glob[None])

    def _correlation(self, returns: np.ndarray, t: int) -> np.ndarray:
        """`envs.tables.ewma_correlation_triu`'s row: upper triangle as float32."""
        if t == 0:
            return np.zeros(len(self.upper[0]), dtype=np.float32)
        a, b = self.diagonal_and_upper
        decay = self.correlation_decay
        self.covariance[a, b] = decay * self.covariance[a, b] + (1.0 - decay) * returns[a] * returns[b]
        a, b = self.upper
        scale = np.sqrt(self.covariance[a, a] * self.covariance[b, b])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scale > 0.0, self.covariance[a, b] / scale, 0.0).astype(np.float32)
