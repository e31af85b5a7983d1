"""Streaming features: the causal feature pipeline advanced one bar at a time, in O(1) per bar.

`StreamingFeatures.update(bar)` returns the row that `features.pipeline.compute_features` gives
for that bar over the same history. Every part keeps the running state of its batch kernel
(running sums, seeded EMAs, Wilder averages, pandas' compensated rolling moments, the HMM's
forward belief) and ring buffers of the values its window still needs, and repeats the batch
arithmetic in the batch's order, so a streamed row equals the batch row to rounding (tested to
1e-9 over whole splits; on synthetic8 bit for bit). The cost of a bar does not grow with the
history: windows are bounded by the config, and the covariance summaries re-estimate on one
window every `stride` bars, as the batch does.

The state is a flat dict of arrays (`state_dict`, `load_state_dict`), so a service persists it
after every bar and loads it back without unpickling anything. The stream takes the market's
numeric sentiment channel (one message per instrument and bar), not scored texts, and not the
opt-in coarse timeframes (`features.timeframes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import multivariate_normal

from envs.market_data import FORWARD_FILLED, MarketData
from features import indicators as ind
from features.config import FeaturesConfig
from features.covariance import make_estimator, summarize
from features.pipeline import FeatureSet, is_flag
from features.regimes import RegimeDetector


@dataclass(frozen=True)
class Bar:
    """One bar of a universe as it arrives, known at its close."""

    timestamp: pd.Timestamp
    ohlcv: np.ndarray                     # (N, 5) float64; NaN open/high/low where the instrument has none
    macro: np.ndarray                     # (M,) float64 in the market's macro order
    sentiment: np.ndarray | None = None   # (N,) float64, the numeric sentiment channel
    observed: np.ndarray | None = None    # (N,) bool, False where the price is FORWARD_FILLED (None: all observed)


def market_bars(market: MarketData, start: int = 0, stop: int | None = None) -> Iterator[Bar]:
    """The bars [start, stop) of `market`, one at a time."""
    for t in range(start, market.n_bars if stop is None else stop):
        yield Bar(market.timestamps[t], market.ohlcv[t], market.macro[t],
                  None if market.sentiment is None else market.sentiment[t], market.quality[t] != FORWARD_FILLED)


@dataclass(frozen=True)
class FeatureRow:
    """One bar's rows of the feature tensors (`features.pipeline.FeatureSet`)."""

    instrument: np.ndarray    # (N, F) float32
    global_: np.ndarray       # (G,) float32
    regime: np.ndarray        # (K,) float32
    missing: tuple[str, ...] = ()   # inputs that had started and are NaN at this bar ("SYMBOL.feature")


# ---------------------------------------------------------------------- state
class Stream:
    """A streaming computation whose state is its numeric attributes and those of its parts."""

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """Every numeric attribute (parts recursively) as an array, keyed by its dotted path (the
        stream's own arrays, not copies: write them out before the next update)."""
        if "_leaves" not in self.__dict__:                  # the same parts every bar: find them once
            self._leaves = self._find_leaves()
        state = {}
        for key, owner, name in self._leaves:
            value = getattr(owner, name)
            if isinstance(value, np.memmap):
                continue
            state[prefix + key] = value if isinstance(value, np.ndarray) else np.array(value)
        return state

    def _find_leaves(self, prefix: str = "") -> list[tuple[str, Stream, str]]:
        """(dotted key, owner, attribute) of every numeric attribute, parts recursively."""
        leaves = []
        for name, value in vars(self).items():
            key = prefix + name
            if name.startswith("_") or isinstance(value, np.memmap):   # a memory-mapped array keeps itself
                continue
            if isinstance(value, Stream):
                leaves += value._find_leaves(key + ".")
            elif isinstance(value, list) and value and isinstance(value[0], Stream):
                for k, part in enumerate(value):
                    leaves += part._find_leaves(f"{key}.{k}.")
            elif isinstance(value, (np.ndarray, int, float, np.number)):
                leaves.append((key, self, name))
        return leaves

    def load_state_dict(self, state: dict[str, np.ndarray], prefix: str = "") -> None:
        """Restore what `state_dict` returned (KeyError or ValueError naming the entry that does
        not fit this stream's configuration)."""
        for key, owner, name in self._find_leaves():
            value, stored = getattr(owner, name), state.get(prefix + key)
            if stored is None:
                raise KeyError(f"streaming state lacks '{prefix + key}'")
            stored = np.asarray(stored)
            if isinstance(value, np.ndarray):
                if stored.shape != value.shape:
                    raise ValueError(f"streaming state '{prefix + key}' has shape {stored.shape}, "
                                     f"expected {value.shape}")
                setattr(owner, name, stored.astype(value.dtype, copy=True))
            else:
                setattr(owner, name, type(value)(stored.item()))


class Ring(Stream):
    """The last `length` rows pushed, (width,) each, oldest overwritten first."""

    def __init__(self, length: int, width: int, dtype: type = np.float64) -> None:
        self.values = np.full((length, width), np.nan) if dtype is np.float64 else np.zeros((length, width), dtype)
        self.head = 0                       # the next slot
        self.count = 0                      # rows pushed so far

    def push(self, row: np.ndarray) -> None:
        self.values[self.head] = row
        self.head = (self.head + 1) % len(self.values)
        self.count += 1

    def ago(self, k: int) -> np.ndarray:
        """The row pushed k pushes ago (0: the latest)."""
        return self.values[(self.head - 1 - k) % len(self.values)]

    def last(self, n: int) -> np.ndarray:
        """(n, width) the last n rows, oldest first."""
        return self.values[(self.head - n + np.arange(n)) % len(self.values)]

    def keep_in(self, path: Path, fresh: bool) -> None:
        """Hold the rows in a memory-mapped file at `path`, written from the rows held now when
        `fresh`, else read as the rows: each push then writes its one row there, and
        `state_dict` leaves the rows out (a service saving its state every bar then writes one
        row of a large ring, not all of it). A row pushed for a bar whose state was not saved
        yet lands in the slot of the oldest row; a ring one row longer than its users read
        keeps the saved state's rows intact."""
        if fresh:
            rows = np.lib.format.open_memmap(path, mode="w+", dtype=self.values.dtype, shape=self.values.shape)
            rows[...] = self.values
        else:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: the ring's rows are missing beside the saved state")
            rows = np.lib.format.open_memmap(path, mode="r+")
            if rows.shape != self.values.shape or rows.dtype != self.values.dtype:
                raise ValueError(f"{path} holds {rows.dtype} {rows.shape}, the ring {self.values.dtype} "
                                 f"{self.values.shape}")
        self.values = rows


def _nan(width: int) -> np.ndarray:
    return np.full(width, np.nan)


# ---------------------------------------------------------------------- indicator kernels, one row at a time
class RollingMean(Stream):
    """`indicators.sma`: a running sum, the leaving row subtracted after the output."""

    def __init__(self, window: int, width: int) -> None:
        self.window = window
        self.total = np.zeros(width)
        self.ring = Ring(window, width)

    def update(self, x: np.ndarray) -> np.ndarray:
        self.total = self.total + x
        self.ring.push(x)
        if self.ring.count < self.window:
            return _nan(len(x))
        out = self.total / self.window
        self.total = self.total - self.ring.ago(self.window - 1)
        return out


class SeededEMA(Stream):
    """`indicators._ema_seeded`: seeded at row `seed_end` with the mean of the `window` rows
    ending there, then prev = (x - prev) k + prev."""

    def __init__(self, window: int, k: float, seed_end: int, width: int) -> None:
        self.window, self.k, self.seed_end = window, k, seed_end
        self.prev = np.zeros(width)
        self.t = 0

    def update(self, x: np.ndarray) -> np.ndarray:
        t = self.t
        self.t += 1
        if t < self.seed_end - self.window + 1:
            return _nan(len(x))
        if t <= self.seed_end:
            self.prev = self.prev + x
            if t < self.seed_end:
                return _nan(len(x))
            self.prev = self.prev / self.window
            return self.prev
        self.prev = (x - self.prev) * self.k + self.prev
        return self.prev


def ema(window: int, width: int) -> SeededEMA:
    """`indicators.ema`'s stream: k = 2 / (window + 1), seeded at row window - 1."""
    return SeededEMA(window, 2.0 / (window + 1), window - 1, width)


class MACD(Stream):
    """`indicators.macd`: line, signal and histogram (NaN before row slow + signal - 2)."""

    def __init__(self, fast: int, slow: int, signal: int, width: int) -> None:
        self.fast = SeededEMA(fast, 2.0 / (fast + 1), slow - 1, width)
        self.slow = SeededEMA(slow, 2.0 / (slow + 1), slow - 1, width)
        self.signal = SeededEMA(signal, 2.0 / (signal + 1), slow + signal - 2, width)
        self.first = slow + signal - 2
        self.t = 0

    def update(self, close: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        line = self.fast.update(close) - self.slow.update(close)
        signal = self.signal.update(line)
        t = self.t
        self.t += 1
        if t < self.first:
            return _nan(len(close)), _nan(len(close)), _nan(len(close))
        return line, signal, line - signal


class WilderRSI(Stream):
    """`indicators._wilder_rsi`."""

    def __init__(self, window: int, width: int) -> None:
        self.window = window
        self.gain, self.loss, self.previous = np.zeros(width), np.zeros(width), np.zeros(width)
        self.t = 0

    def update(self, close: np.ndarray) -> np.ndarray:
        t, window = self.t, self.window
        self.t += 1
        diff = close - self.previous
        self.previous = close.copy()
        if t == 0:
            return _nan(len(close))
        up = np.where(diff > 0, diff, 0.0)
        down = np.where(diff < 0, -diff, 0.0)
        if t < window:
            self.gain, self.loss = self.gain + up, self.loss + down
            return _nan(len(close))
        if t == window:
            self.gain, self.loss = (self.gain + up) / window, (self.loss + down) / window
        else:
            inverse = 1.0 / window
            self.gain = (self.gain * (window - 1) + up) * inverse
            self.loss = (self.loss * (window - 1) + down) * inverse
        total = self.gain + self.loss
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total != 0.0, 100.0 * (self.gain / total), 0.0)


class RollingStd(Stream):
    """`indicators._rolling_std`: running sums of deviations to an anchor, rebuilt from the
    window every `window` rows, a near-flat window recomputed."""

    def __init__(self, window: int, width: int) -> None:
        self.window = window
        self.anchor, self.total, self.total2, self.peak = (np.zeros(width) for _ in range(4))
        self.ring = Ring(window + 1, width)
        self.t = 0

    def update(self, x: np.ndarray) -> np.ndarray:
        t, window = self.t, self.window
        self.t += 1
        self.ring.push(x)
        if t < window - 1:
            return _nan(len(x))
        if (t - window + 1) % window == 0:                    # rebuild around the window's last value
            self.anchor = x.copy()
            self.total, self.total2 = np.zeros(len(x)), np.zeros(len(x))
            for row in self.ring.last(window):
                deviation = row - self.anchor
                self.total = self.total + deviation
                self.total2 = self.total2 + deviation * deviation
            self.peak = self.total2.copy()
        else:                                                 # slide: add row t, drop row t - window
            new = x - self.anchor
            old = self.ring.ago(window) - self.anchor
            self.total = self.total + (new - old)
            self.total2 = self.total2 + (new * new - old * old)
            self.peak = np.maximum(self.peak, self.total2)
        mean = self.total / window
        var = self.total2 / window - mean * mean
        flat = np.flatnonzero(var <= ind.RECOMPUTE_BELOW * self.peak)
        if flat.size:
            rows = np.ascontiguousarray(self.ring.last(window))
            for i in flat:
                var[i] = ind._window_variance(rows, window - 1, int(i), window)
        return np.sqrt(var)


class WilderAverage(Stream):
    """`indicators._wilder_average` from row `first`."""

    def __init__(self, window: int, first: int, width: int) -> None:
        self.window, self.first = window, first
        self.average = np.zeros(width)
        self.t = 0

    def update(self, x: np.ndarray) -> np.ndarray:
        t, window = self.t, self.window
        self.t += 1
        seed_end = self.first + window - 1
        if t < self.first:
            return _nan(len(x))
        if t < seed_end:
            self.average = self.average + x
            return _nan(len(x))
        if t == seed_end:
            self.average = (self.average + x) / window
        else:
            self.average = (self.average * (window - 1) + x) / window
        return self.average


class PandasRolling(Stream):
    """pandas' `rolling(window, min_periods).mean()` and `.std()` (ddof 1) of columns, with its
    compensated adds and removes (`pandas/_libs/window/aggregations.pyx`: roll_mean, roll_var)."""

    def __init__(self, window: int, min_periods: int, width: int) -> None:
        self.window, self.min_periods = window, min_periods
        self.ring = Ring(window, width)
        zeros = lambda: np.zeros(width)
        self.nobs, self.sum, self.neg, self.add_c, self.remove_c = (zeros() for _ in range(5))
        self.same, self.prev = zeros(), np.full(width, np.nan)      # consecutive equal values, last value
        self.var_mean, self.ssqdm, self.var_add_c, self.var_remove_c = (zeros() for _ in range(4))

    def update(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) over the window ending at this row."""
        if self.ring.count >= self.window:
            self._remove(self.ring.ago(self.window - 1))
        self.ring.push(x)
        self._add(x)
        n = self.nobs
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.sum / n
            mean = np.where(self.same >= n, self.prev, mean)
            mean = np.where((self.same < n) & (self.neg == 0) & (mean < 0), 0.0, mean)
            mean = np.where((self.same < n) & (self.neg == n) & (mean > 0), 0.0, mean)
            mean = np.where((n >= self.min_periods) & (n > 0), mean, np.nan)
            var = np.where((n == 1) | (self.same >= n), 0.0, self.ssqdm / (n - 1.0))
            var = np.where((n >= max(self.min_periods, 1)) & (n > 1), var, np.nan)
            std = np.sqrt(np.where(var < 0, 0.0, var))
        return mean, std

    def _add(self, x: np.ndarray) -> None:
        seen = x == x
        same = np.where(x == self.prev, self.same + 1, 1.0)
        self.same, self.prev = np.where(seen, same, self.same), np.where(seen, x, self.prev)
        self.nobs = self.nobs + seen
        y = x - self.add_c                                           # mean: Kahan add
        t = self.sum + y
        self.add_c = np.where(seen, t - self.sum - y, self.add_c)
        self.sum = np.where(seen, t, self.sum)
        self.neg = self.neg + (seen & np.signbit(x))
        previous_mean = self.var_mean - self.var_add_c               # variance: compensated Welford add
        y = x - self.var_add_c
        delta = y - self.var_mean
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.var_mean + delta / self.nobs
        self.var_add_c = np.where(seen, delta + self.var_mean - y, self.var_add_c)
        self.ssqdm = np.where(seen, self.ssqdm + (x - previous_mean) * (x - mean), self.ssqdm)
        self.var_mean = np.where(seen, mean, self.var_mean)

    def _remove(self, x: np.ndarray) -> None:
        seen = x == x
        self.nobs = self.nobs - seen
        y = -x - self.remove_c
        t = self.sum + y
        self.remove_c = np.where(seen, t - self.sum - y, self.remove_c)
        self.sum = np.where(seen, t, self.sum)
        self.neg = self.neg - (seen & np.signbit(x))
        left = seen & (self.nobs > 0)
        previous_mean = self.var_mean - self.var_remove_c
        y = x - self.var_remove_c
        delta = y - self.var_mean
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.var_mean - delta / self.nobs
        self.var_remove_c = np.where(left, delta + self.var_mean - y, self.var_remove_c)
        self.ssqdm = np.where(left, self.ssqdm - (x - previous_mean) * (x - mean),
                              np.where(seen, 0.0, self.ssqdm))
        self.var_mean = np.where(left, mean, np.where(seen, 0.0, self.var_mean))


class Lagged(Stream):
    """x[t] and x[t - lag] for lags up to `depth` (NaN before the history reaches them)."""

    def __init__(self, depth: int, width: int) -> None:
        self.ring = Ring(depth + 1, width)

    def push(self, x: np.ndarray) -> None:
        self.ring.push(x)

    def ago(self, lag: int) -> np.ndarray:
        return self.ring.ago(lag) if self.ring.count > lag else _nan(self.ring.values.shape[1])


# ---------------------------------------------------------------------- feature families
class Indicators(Stream):
    """`features.pipeline.indicator_features` (and the sentiment aggregation of the market's
    numeric channel), one row at a time."""

    def __init__(self, config: FeaturesConfig, has_ohlc: np.ndarray, has_volume: np.ndarray,
                 bars_per_year: float, sentiment: bool) -> None:
        ic, N = config.indicators, len(has_ohlc)
        self.closes_only = ~np.asarray(has_ohlc, dtype=bool)
        self.volume_cols = np.flatnonzero(has_volume)
        self.flags = np.stack([np.asarray(has_ohlc, np.float64), np.asarray(has_volume, np.float64)], axis=-1)
        self.bars_per_year = float(bars_per_year)
        self.sentiment = int(sentiment)
        V = len(self.volume_cols)
        self.closes = Lagged(max(ic.horizons), N)
        self.sma = [RollingMean(w, N) for w in ic.ma_windows]
        self.ema = [ema(w, N) for w in ic.ma_windows]
        self.macd = MACD(*ic.macd, N)
        self.rsi = WilderRSI(ic.rsi_window, N)
        self.bb_mean, self.bb_std = RollingMean(ic.bollinger_window, N), RollingStd(ic.bollinger_window, N)
        self.atr = WilderAverage(ic.atr_window, 1, N)
        self.obv = np.zeros(V)
        self.obv_lagged = Lagged(ic.obv_window, V)
        self.obv_volume = RollingMean(ic.obv_window, V)
        self.vwap_price, self.vwap_volume = RollingMean(ic.vwap_window, V), RollingMean(ic.vwap_window, V)
        self.volume_mean, self.volume_std = RollingMean(ic.volume_window, V), RollingStd(ic.volume_window, V)
        self.cc = [RollingMean(w, N) for w in ic.volatility_windows]
        self.parkinson = [RollingMean(w, N) for w in ic.volatility_windows]
        self.gk = [RollingMean(w, N) for w in ic.volatility_windows]
        sc = config.sentiment_model
        self.ewma_alpha = 1.0 / (1.0 + (1.0 / (1.0 - np.exp(np.log(0.5) / sc.ewma_halflife)) - 1.0))
        self.ewma, self.ewma_weight = np.full(N, np.nan), np.ones(N)
        self.ewma_lagged = Lagged(sc.momentum_window, N)
        self.config = config
        self.t = 0

    def update(self, bar: Bar, log_return: np.ndarray) -> np.ndarray:
        """(N, F) raw features of this bar, warm-up NaNs included."""
        ic, bpy = self.config.indicators, self.bars_per_year
        c = bar.ohlcv[:, 3]
        fill = lambda x: np.where(self.closes_only, c, x)
        o, h, l = fill(bar.ohlcv[:, 0]), fill(bar.ohlcv[:, 1]), fill(bar.ohlcv[:, 2])
        first = self.t == 0
        previous = self.closes.ago(0)
        self.closes.push(c)
        self.t += 1
        columns = [log_return]
        for sma, ema_ in zip(self.sma, self.ema):
            columns += [c / sma.update(c) - 1.0, c / ema_.update(c) - 1.0]
        line, signal, hist = self.macd.update(c)
        columns += [line / c, signal / c, hist / c, self.rsi.update(c)]
        with np.errstate(invalid="ignore", divide="ignore"):
            middle, std = self.bb_mean.update(c), self.bb_std.update(c)
            half = ic.bollinger_width * std
            upper, lower = middle + half, middle - half
            span = upper - lower
            columns += [np.where(span == 0.0, 0.5, (c - lower) / span), span / middle]
        true_range = _nan(len(c)) if first else np.maximum(np.maximum(h - l, np.abs(previous - h)),
                                                           np.abs(previous - l))
        columns.append(self.atr.update(true_range) / c)
        columns += self._volume(bar, h, l, c, previous, first)
        for horizon in ic.horizons:
            lagged = self.closes.ago(horizon)
            columns += [c / lagged - 1.0, (c - lagged) / c]
        log_hl, log_co = np.log(h / l), np.log(c / o)
        for k, w in enumerate(ic.volatility_windows):
            cc = np.sqrt(np.maximum(self.cc[k].update(log_return**2), 0.0) * bpy)
            if self.t <= w:
                cc = _nan(len(c))
            parkinson = np.sqrt(np.maximum(self.parkinson[k].update(log_hl**2 / (4.0 * np.log(2.0))), 0.0) * bpy)
            squared = 0.5 * log_hl**2 - (2.0 * np.log(2.0) - 1.0) * log_co**2
            gk = np.sqrt(np.maximum(self.gk[k].update(squared), 0.0) * bpy)
            columns += [cc, np.where(self.closes_only, cc, parkinson), np.where(self.closes_only, cc, gk)]
        columns += [self.flags[:, 0], self.flags[:, 1]]
        if self.sentiment:
            columns += self._sentiment(bar.sentiment)
        return np.stack(columns, axis=-1)

    def _volume(self, bar: Bar, h: np.ndarray, l: np.ndarray, c: np.ndarray, previous: np.ndarray,
                first: bool) -> list[np.ndarray]:
        """OBV change, VWAP distance and abnormal volume (NaN without volume)."""
        ic, cols = self.config.indicators, self.volume_cols
        out = [_nan(len(c)) for _ in range(3)]
        if cols.size == 0:
            return out
        h, l, c, volume, previous = h[cols], l[cols], c[cols], bar.ohlcv[cols, 4], previous[cols]
        if first:
            self.obv = volume.copy()
        else:
            self.obv = np.where(c > previous, self.obv + volume, np.where(c < previous, self.obv - volume, self.obv))
        self.obv_lagged.push(self.obv)
        traded = self.obv_volume.update(volume) * ic.obv_window
        with np.errstate(invalid="ignore", divide="ignore"):
            if self.t > ic.obv_window:
                out[0][cols] = np.where(traded > 0, (self.obv - self.obv_lagged.ago(ic.obv_window)) / traded, 0.0)
            typical = (h + l + c) / 3.0
            vwap = self.vwap_price.update(typical * volume) / self.vwap_volume.update(volume)
            out[1][cols] = c / vwap - 1.0
            log_volume = np.log1p(volume)
            mean, std = self.volume_mean.update(log_volume), self.volume_std.update(log_volume)
            out[2][cols] = np.where(std > 0, (log_volume - mean) / std, np.where(np.isnan(mean), np.nan, 0.0))
        return out

    def _sentiment(self, net: np.ndarray | None) -> list[np.ndarray]:
        """`features.sentiment.aggregate` of one message per bar: net, log(2), attention 0 (a
        constant count), pandas' EWMA (adjust=False) of net, and its momentum."""
        if net is None:
            raise ValueError("the stream's features take sentiment but the bar has none")
        alpha = self.ewma_alpha
        seen, known = net == net, self.ewma == self.ewma
        weight = np.where(known, self.ewma_weight * (1.0 - alpha), self.ewma_weight)
        blended = (weight * self.ewma + alpha * net) / (weight + alpha)
        update = known & seen & (self.ewma != net)
        self.ewma = np.where(update, blended, np.where(~known & seen, net, self.ewma))
        self.ewma_weight = np.where(known & ~seen, weight, 1.0)
        self.ewma_lagged.push(self.ewma)
        lag = self.config.sentiment_model.momentum_window
        momentum = self.ewma - self.ewma_lagged.ago(lag)
        count = np.log1p(np.ones(len(net)))
        return [net.astype(np.float64), count, np.zeros(len(net)), self.ewma.copy(), momentum]


class Macro(Stream):
    """`features.macro.macro_features`: each series published after its lag (monthly ones),
    then its transforms and availability flag."""

    def __init__(self, config: FeaturesConfig, names: tuple[str, ...], monthly: tuple[bool, ...]) -> None:
        mc = config.macro
        self.names, self.monthly, self.config = names, monthly, mc
        M = len(names)
        self.lag_ns = int(pd.Timedelta(days=mc.publication_lag_days).value)
        length = max(64, 2 * mc.publication_lag_days + 8)                  # bars within the lag, at most
        self.pending_stamps, self.pending = Ring(length, 1, np.int64), Ring(length, M)   # not yet published
        self.pending_first = 0
        self.published = np.full(M, np.nan)
        self.series = Lagged(3 * mc.change_window, M)
        self.log_dollar = Lagged(3 * mc.change_window, M)
        self.zscore = PandasRolling(mc.zscore_window, mc.zscore_window, M)

    def update(self, bar: Bar) -> np.ndarray:
        """(G_macro,) raw macro features of this bar."""
        stamp = int(bar.timestamp.value)
        self._publish(stamp, np.asarray(bar.macro, dtype=np.float64))
        x = np.where(np.asarray(self.monthly, dtype=bool), self.published, bar.macro)
        self.series.push(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_x = np.log(x)
        self.log_dollar.push(log_x)
        mean, std = self.zscore.update(x)
        w = self.config.change_window
        columns: list[float] = []
        with np.errstate(invalid="ignore", divide="ignore"):
            for m, name in enumerate(self.names):
                if name == "vix":
                    columns += [x[m], x[m] - self.series.ago(1)[m], (x[m] - mean[m]) / std[m]]
                elif name == "dollar_index":
                    columns += [log_x[m] - self.log_dollar.ago(w)[m], log_x[m] - self.log_dollar.ago(3 * w)[m]]
                else:
                    columns += [x[m], x[m] - self.series.ago(w)[m]]
                columns.append(float(np.isfinite(x[m])))
        return np.array(columns, dtype=np.float64)

    def _publish(self, stamp: int, values: np.ndarray) -> None:
        """Queue this bar's values of the monthly series; publish those stamped at or before
        stamp - lag (the last one published wins, as `features.macro.published` reads it)."""
        M = len(self.names)
        if M == 0 or not any(self.monthly):
            return
        ring = self.pending
        if ring.count - self.pending_first >= len(ring.values):
            raise ValueError(f"more than {len(ring.values)} bars within the publication lag of "
                             f"{self.config.publication_lag_days} days")
        ring.push(values)
        self.pending_stamps.push(np.array([stamp]))
        visible = stamp - self.lag_ns
        while self.pending_first < ring.count:
            back = ring.count - 1 - self.pending_first
            if self.pending_stamps.ago(back)[0] > visible:
                break
            self.published = ring.ago(back).copy()
            self.pending_first += 1


class CovarianceSummaries(Stream):
    """`features.covariance.rolling_summaries` of the bars' log returns (from row 1): a fit on
    the last `window` returns every `stride` bars, held in between."""

    def __init__(self, config: FeaturesConfig, width: int) -> None:
        cov = config.covariance
        self.window, self.stride = cov.window, cov.stride
        self.estimator_name, self.halflife = cov.estimator, cov.ewma_halflife
        self.returns = Ring(cov.window, width)
        self.current = np.full(4, np.nan)
        self.t = 0

    def update(self, log_return: np.ndarray) -> np.ndarray:
        t = self.t
        self.t += 1
        if t == 0:
            return self.current.copy()
        self.returns.push(log_return)
        j = t - 1                                            # the row of the batch's returns[1:]
        if j >= self.window - 1 and (j - self.window + 1) % self.stride == 0:
            estimator = make_estimator(self.estimator_name, self.halflife)
            self.current = summarize(estimator.fit(self.returns.last(self.window)).covariance_)
        return self.current.copy()


class Regimes(Stream):
    """`features.regimes`: the HMM inputs of this bar and the forward filter's belief."""

    def __init__(self, detector: RegimeDetector, smoothing_window: int, macro_names: tuple[str, ...],
                 width: int) -> None:
        self.detector = detector
        self.smoothing_window = smoothing_window
        self.vix = macro_names.index("vix") if "log_vix" in detector.input_names_ else -1
        self.squares = PandasRolling(smoothing_window, smoothing_window, width)
        self.densities = [multivariate_normal(mean, cov, allow_singular=True)
                          for mean, cov in zip(detector.means_, detector.covars_)]
        self.belief = np.asarray(detector.startprob_, dtype=np.float64).copy()
        self.t = 0

    def update(self, bar: Bar, log_return: np.ndarray) -> np.ndarray:
        t = self.t
        self.t += 1
        mean_squares, _ = self.squares.update(log_return**2)
        columns = np.stack([log_return, np.log(np.sqrt(mean_squares) + 1e-12)], axis=1)       # (N, 2)
        total = columns[0].copy()
        for row in columns[1:]:                  # pandas' mean across columns: summed in order
            total += row
        row = list(total / len(columns))
        if self.vix >= 0:
            vix = bar.macro[self.vix]
            with np.errstate(invalid="ignore", divide="ignore"):
                row.append(float(np.log(vix if vix > 0 else np.nan)))
        x = np.array(row)
        if t < self.smoothing_window:
            x[:] = np.nan
        detector = self.detector
        prior = self.belief if t == 0 else self.belief @ detector.transmat_
        if np.isfinite(x).all():
            z = (x - detector.center_) / detector.scale_
            density = np.array([float(d.logpdf(z)) for d in self.densities])
            weighted = prior * np.exp(density - density.max())
            self.belief = weighted / weighted.sum() if weighted.sum() > 0 else prior
        else:
            self.belief = prior
        return self.belief.copy()


class RollingZScore(Stream):
    """`features.normalize.rolling_zscore` of every column, flags passed through as 0/1."""

    def __init__(self, config: FeaturesConfig, flags: np.ndarray) -> None:
        norm = config.normalization
        self.window, self.min_periods, self.clip = norm.window, norm.min_periods, norm.clip
        C = len(flags)
        self.flags = np.asarray(flags, dtype=bool)
        self.total, self.total2 = np.zeros(C), np.zeros(C)
        self.count = np.zeros(C, dtype=np.int64)
        self.ring = Ring(norm.window + 1, C)          # reads the last `window` rows (+1: see Ring.keep_in)

    def update(self, x: np.ndarray) -> np.ndarray:
        finite = np.isfinite(x)
        self.total = self.total + np.where(finite, x, 0.0)
        self.total2 = self.total2 + np.where(finite, x * x, 0.0)
        self.count = self.count + finite
        if self.ring.count >= self.window:
            old = self.ring.ago(self.window - 1)
            gone = np.isfinite(old)
            self.total = self.total - np.where(gone, old, 0.0)
            self.total2 = self.total2 - np.where(gone, old * old, 0.0)
            self.count = self.count - gone
        self.ring.push(x)
        count = self.count
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.total / count
            var = (self.total2 - count * mean * mean) / np.maximum(count - 1, 1)
            std = np.where(var > 0, np.sqrt(var), 0.0)
            z = np.minimum(np.maximum((x - mean) / std, -self.clip), self.clip)
        scaled = np.where((count >= self.min_periods) & finite & (std > 1e-12 * np.maximum(1.0, np.abs(mean))),
                          z, 0.0)
        scaled = np.where(self.flags, np.nan_to_num(x, nan=0.0), scaled)
        return scaled.astype(np.float32)


# ---------------------------------------------------------------------- the pipeline
class StreamingFeatures(Stream):
    """`features.pipeline.compute_features` one bar at a time (see the module docstring).

    Built with the universe's static description and, with regime features on, the fitted
    `RegimeDetector` of the run; feed it every bar from the market's first (`update`)."""

    def __init__(self, config: FeaturesConfig, symbols: tuple[str, ...], has_ohlc: np.ndarray,
                 has_volume: np.ndarray, bars_per_year: float, macro_names: tuple[str, ...],
                 macro_is_monthly: tuple[bool, ...], sentiment: bool, instrument_names: tuple[str, ...],
                 global_names: tuple[str, ...], detector: RegimeDetector | None = None) -> None:
        if config.sentiment and (config.sentiment_model.model_path or config.sentiment_model.texts_path):
            raise ValueError("streaming features take the market's numeric sentiment channel, not scored texts "
                             "(features.sentiment_model.model_path / texts_path are set)")
        if config.timeframes.bars:
            raise ValueError(f"streaming features do not compute the coarse timeframes and patterns "
                             f"(features.timeframes.bars={list(config.timeframes.bars)})")
        if config.regime and detector is None:
            raise ValueError("features.regime is on: the stream needs the run's fitted RegimeDetector")
        N = len(has_ohlc)
        self.indicators = Indicators(config, has_ohlc, has_volume, bars_per_year, config.sentiment and sentiment)
        self.macro = Macro(config, tuple(macro_names), tuple(macro_is_monthly))
        self.covariance = CovarianceSummaries(config, N)
        self.regimes = Regimes(detector, config.regimes.smoothing_window, tuple(macro_names), N) \
            if config.regime else None
        self.instrument_names, self.global_names = tuple(instrument_names), tuple(global_names)
        instrument_flags = np.tile([is_flag(n) for n in self.instrument_names], N)
        self.instrument_norm = RollingZScore(config, instrument_flags)
        self.global_norm = RollingZScore(config, np.array([is_flag(n) for n in self.global_names], dtype=bool))
        self.started = np.zeros(N * len(self.instrument_names) + len(self.global_names), dtype=bool)
        self.symbols = tuple(symbols)
        self.previous_close = np.full(N, np.nan)
        self.t = 0

    @classmethod
    def for_market(cls, market: MarketData, config: FeaturesConfig, features: FeatureSet,
                   detector: RegimeDetector | None = None) -> StreamingFeatures:
        """The stream of `market`'s universe (its instruments, macro series and sentiment), with
        the names of the batch `features` built on it."""
        return cls(config, market.symbols, market.has_ohlc, market.has_volume, market.bars_per_year,
                   market.macro_names, market.macro_is_monthly, market.sentiment is not None, features.instrument_names,
                   features.global_names, detector)

    def update(self, bar: Bar) -> FeatureRow:
        """This bar's feature rows; bars must come in order, from the market's first."""
        close = np.asarray(bar.ohlcv[:, 3], dtype=np.float64)
        log_return = np.zeros(len(close)) if self.t == 0 else np.log(close / self.previous_close)
        self.previous_close = close.copy()
        self.t += 1
        raw = self.indicators.update(bar, log_return)                         # (N, F)
        if raw.shape[1] != len(self.instrument_names):
            raise ValueError(f"the stream computes {raw.shape[1]} instrument features, the batch pipeline named "
                             f"{len(self.instrument_names)}: {self.instrument_names}")
        summaries = self.covariance.update(log_return)
        global_raw = np.concatenate([self.macro.update(bar), summaries])     # (G,)
        regime = self.regimes.update(bar, log_return) if self.regimes is not None else np.zeros(0)
        instrument = self.instrument_norm.update(raw.reshape(-1)).reshape(raw.shape)
        return FeatureRow(instrument, self.global_norm.update(global_raw), regime.astype(np.float32),
                          self._missing(np.concatenate([raw.reshape(-1), global_raw]), regime))

    def _missing(self, raw: np.ndarray, regime: np.ndarray) -> tuple[str, ...]:
        """Inputs whose values had started (been finite) and are NaN now: features are
        gap-free once they start, so a gap means the bar lacked something (a sentiment or a
        macro print) that the model reads."""
        finite = np.isfinite(raw)
        self.started |= finite
        gaps = np.flatnonzero(self.started & ~finite)
        F = len(self.instrument_names)
        names = [f"{self.symbols[k // F]}.{self.instrument_names[k % F]}" if k < len(self.symbols) * F
                 else self.global_names[k - len(self.symbols) * F] for k in gaps]
        return tuple(names) + (("regime_probs",) if not np.isfinite(regime).all() else ())

