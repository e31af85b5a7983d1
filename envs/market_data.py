"""`MarketData`: one validated, aligned container for a universe of instruments.

Arrays are time-major: OHLCV is (T, N, 5) float64, macro (T, M), sentiment (T, N). Bar `t`
closes at `timestamps[t]`. Everything downstream (features, simulator, evaluation) reads a
`MarketData`; nothing else knows where the data came from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from envs.costs import ASSET_CLASSES, InstrumentCosts

OPEN, HIGH, LOW, CLOSE, VOLUME = range(5)
OHLCV_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

# quality flags per (t, i) cell
OBSERVED = 0
FORWARD_FILLED = 1


class DataValidationError(ValueError):
    """Market data that breaks an invariant; the message names the file, row, column or key."""


@dataclass(frozen=True)
class GroundTruth:
    """What a synthetic generator knows and an agent does not.

    expected_returns[t, i] and conditional_vol[t, i] are the mean and standard deviation of the
    log return of bar t+1 given everything the generator knew at the close of bar t (its regime,
    volatility state, momentum and sentiment); they are the oracle's inputs.
    """

    regime: np.ndarray                  # (T,) int64, index into regime_names
    regime_names: tuple[str, ...]
    expected_returns: np.ndarray        # (T, N) float64
    conditional_vol: np.ndarray         # (T, N) float64
    regime_correlation: np.ndarray      # (K, N, N) float64

    def take_time(self, index: slice | np.ndarray) -> GroundTruth:
        return dataclasses.replace(self, regime=self.regime[index],
                                   expected_returns=self.expected_returns[index],
                                   conditional_vol=self.conditional_vol[index])

    def take_instruments(self, index: np.ndarray) -> GroundTruth:
        return dataclasses.replace(
            self, expected_returns=self.expected_returns[:, index],
            conditional_vol=self.conditional_vol[:, index],
            regime_correlation=self.regime_correlation[:, index][:, :, index])


@dataclass(frozen=True, eq=False)
class MarketData:
    """A validated universe: prices, macro, sentiment, costs, and (synthetic only) ground truth.

    Instruments without real open/high/low (closes-only sources) have NaN there and
    `has_ohlc[i] = False`; instruments without volume have NaN volume and `has_volume[i] = False`.
    Macro columns may start with NaN before a series begins (`macro` is never filled backwards);
    `macro_is_monthly[m]` marks series stamped at their period end that features must lag further
    by a publication delay.
    """

    name: str
    timestamps: pd.DatetimeIndex                 # (T,) UTC, strictly increasing
    symbols: tuple[str, ...]                     # (N,)
    domains: tuple[str, ...]                     # (N,) domain of each instrument
    asset_classes: tuple[str, ...]               # (N,) one of ASSET_CLASSES
    ohlcv: np.ndarray                            # (T, N, 5) float64
    costs: InstrumentCosts
    bars_per_year: float = 252.0
    macro: np.ndarray | None = None              # (T, M) float64
    macro_names: tuple[str, ...] = ()
    macro_is_monthly: tuple[bool, ...] = ()
    sentiment: np.ndarray | None = None          # (T, N) float64, known at the close of t
    quality: np.ndarray | None = None            # (T, N) uint8: OBSERVED or FORWARD_FILLED
    has_ohlc: np.ndarray | None = None           # (N,) bool
    has_volume: np.ndarray | None = None         # (N,) bool
    ground_truth: GroundTruth | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        T, N = len(self.timestamps), len(self.symbols)
        set_ = lambda name, value: object.__setattr__(self, name, value)
        if isinstance(self.timestamps, pd.DatetimeIndex):
            set_("timestamps", self.timestamps.as_unit("ns").rename("timestamp"))  # asi8 in ns
        if self.macro is None:
            set_("macro", np.zeros((T, 0)))
        if self.quality is None:
            set_("quality", np.zeros((T, N), dtype=np.uint8))
        if self.has_ohlc is None:
            set_("has_ohlc", np.ones(N, dtype=bool))
        if self.has_volume is None:
            set_("has_volume", np.ones(N, dtype=bool))
        if not self.macro_is_monthly:
            set_("macro_is_monthly", (False,) * len(self.macro_names))
        self.validate()

    # ------------------------------------------------------------------ shape and content checks
    def validate(self) -> None:
        """Raise `DataValidationError` naming the instrument, timestamp and field of any breach."""
        T, N = len(self.timestamps), len(self.symbols)
        where = f"market '{self.name}'"
        if T < 2 or N < 1:
            raise DataValidationError(f"{where}: needs at least 2 bars and 1 instrument, has T={T}, N={N}")
        if not isinstance(self.timestamps, pd.DatetimeIndex) or self.timestamps.tz is None:
            raise DataValidationError(f"{where}: timestamps must be a tz-aware (UTC) DatetimeIndex")
        steps = np.diff(self.timestamps.asi8)
        if (steps <= 0).any():
            t = int(np.argmax(steps <= 0)) + 1
            raise DataValidationError(f"{where}: timestamps not strictly increasing at row {t} "
                                      f"({self.timestamps[t - 1]} then {self.timestamps[t]})")
        if len(set(self.symbols)) != N:
            raise DataValidationError(f"{where}: duplicate symbols in {self.symbols}")
        for label, values in (("domains", self.domains), ("asset_classes", self.asset_classes)):
            if len(values) != N:
                raise DataValidationError(f"{where}: {label} has {len(values)} entries for {N} instruments")
        for symbol, asset_class in zip(self.symbols, self.asset_classes):
            if asset_class not in ASSET_CLASSES:
                raise DataValidationError(f"{where}: asset class '{asset_class}' of {symbol} "
                                          f"is not one of {ASSET_CLASSES}")
        if self.ohlcv.shape != (T, N, 5) or self.ohlcv.dtype != np.float64:
            raise DataValidationError(f"{where}: ohlcv must be float64 of shape {(T, N, 5)}, "
                                      f"got {self.ohlcv.dtype} {self.ohlcv.shape}")
        self._validate_prices()
        M = len(self.macro_names)
        if self.macro.shape != (T, M):
            raise DataValidationError(f"{where}: macro shape {self.macro.shape} does not match "
                                      f"(T={T}, M={M}) with names {self.macro_names}")
        if len(self.macro_is_monthly) != M:
            raise DataValidationError(f"{where}: macro_is_monthly has {len(self.macro_is_monthly)} "
                                      f"entries for {M} macro series")
        for m, name in enumerate(self.macro_names):
            column = self.macro[:, m]
            if np.isinf(column).any():
                raise DataValidationError(f"{where}: macro '{name}' has infinite values")
            observed = np.flatnonzero(~np.isnan(column))
            if observed.size == 0:
                continue                     # the series starts after this market's window
            gaps = np.isnan(column[observed[0]:])
            if gaps.any():
                t = observed[0] + int(np.argmax(gaps))
                raise DataValidationError(f"{where}: macro '{name}' is NaN at row {t} "
                                          f"({self.timestamps[t]}) after its series began")
        if self.sentiment is not None:
            if self.sentiment.shape != (T, N):
                raise DataValidationError(f"{where}: sentiment shape {self.sentiment.shape} != {(T, N)}")
            if not np.isfinite(self.sentiment).all():
                t, i = np.argwhere(~np.isfinite(self.sentiment))[0]
                raise DataValidationError(f"{where}: sentiment of {self.symbols[i]} is not finite "
                                          f"at row {t} ({self.timestamps[t]})")
        if self.quality.shape != (T, N):
            raise DataValidationError(f"{where}: quality shape {self.quality.shape} != {(T, N)}")
        if self.has_ohlc.shape != (N,) or self.has_volume.shape != (N,):
            raise DataValidationError(f"{where}: has_ohlc and has_volume must have shape ({N},)")
        try:
            self.costs.check(self.symbols)
        except ValueError as error:
            raise DataValidationError(f"{where}: {error}") from None
        if self.ground_truth is not None:
            gt = self.ground_truth
            K = len(gt.regime_names)
            if (gt.regime.shape != (T,) or gt.expected_returns.shape != (T, N)
                    or gt.conditional_vol.shape != (T, N) or gt.regime_correlation.shape != (K, N, N)):
                raise DataValidationError(f"{where}: ground truth shapes do not match T={T}, N={N}, K={K}")

    def _validate_prices(self) -> None:
        close = self.ohlcv[..., CLOSE]
        checks: list[tuple[np.ndarray, str]] = [
            (~np.isfinite(close), "close is NaN or infinite"),
            (close <= 0, "close is not positive"),
        ]
        ohlc = self.has_ohlc[None, :]
        o, h, l = (self.ohlcv[..., k] for k in (OPEN, HIGH, LOW))
        with np.errstate(invalid="ignore"):
            checks += [
                (ohlc & ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(l)), "open/high/low is NaN"),
                (ohlc & ((o <= 0) | (l <= 0)), "open or low is not positive"),
                (ohlc & (h < l), "high < low"),
                (ohlc & ((close > h) | (close < l)), "close outside [low, high]"),
                (ohlc & ((o > h) | (o < l)), "open outside [low, high]"),
                (~ohlc & ~(np.isnan(o) & np.isnan(h) & np.isnan(l)),
                 "open/high/low given for a closes-only instrument"),
            ]
        volume = self.ohlcv[..., VOLUME]
        has_volume = self.has_volume[None, :]
        with np.errstate(invalid="ignore"):
            checks += [
                (has_volume & ~np.isfinite(volume), "volume is NaN"),
                (has_volume & (volume < 0), "volume is negative"),
            ]
        for bad, message in checks:
            if bad.any():
                t, i = np.argwhere(bad)[0]
                raise DataValidationError(f"market '{self.name}': {message} for {self.symbols[i]} "
                                          f"at row {t} ({self.timestamps[t]})")

    # ------------------------------------------------------------------ derived views
    @property
    def n_bars(self) -> int:
        return len(self.timestamps)

    @property
    def n_instruments(self) -> int:
        return len(self.symbols)

    def field(self, name: str) -> np.ndarray:
        """One OHLCV field as a (T, N) view: 'open', 'high', 'low', 'close' or 'volume'."""
        return self.ohlcv[..., OHLCV_FIELDS.index(name)]

    @property
    def close(self) -> np.ndarray:
        return self.ohlcv[..., CLOSE]

    @property
    def log_returns(self) -> np.ndarray:
        """(T, N) close-to-close log returns; row 0 is 0 (no earlier close is known)."""
        close = self.close
        returns = np.zeros_like(close)
        returns[1:] = np.log(close[1:] / close[:-1])
        return returns

    @property
    def domain_names(self) -> tuple[str, ...]:
        """Domains in order of first appearance in the universe."""
        return tuple(dict.fromkeys(self.domains))

    @property
    def domain_index(self) -> np.ndarray:
        """(N,) int64 index of each instrument's domain in `domain_names`."""
        names = self.domain_names
        return np.array([names.index(d) for d in self.domains], dtype=np.int64)

    @property
    def asset_class_index(self) -> np.ndarray:
        """(N,) int64 index of each instrument's asset class in `ASSET_CLASSES`."""
        return np.array([ASSET_CLASSES.index(c) for c in self.asset_classes], dtype=np.int64)

    def instruments_of(self, domain: str) -> tuple[str, ...]:
        return tuple(s for s, d in zip(self.symbols, self.domains) if d == domain)

    # ------------------------------------------------------------------ selections and splits
    def slice_time(self, start: int, stop: int) -> MarketData:
        """Bars [start, stop) as a new MarketData whose arrays are views of this one's."""
        if not 0 <= start < stop <= self.n_bars:
            raise IndexError(f"slice [{start}, {stop}) outside the {self.n_bars} bars of '{self.name}'")
        index = slice(start, stop)
        return dataclasses.replace(
            self, timestamps=self.timestamps[index], ohlcv=self.ohlcv[index], macro=self.macro[index],
            sentiment=None if self.sentiment is None else self.sentiment[index],
            quality=self.quality[index],
            ground_truth=None if self.ground_truth is None else self.ground_truth.take_time(index))

    def between(self, start: str | pd.Timestamp | None = None,
                end: str | pd.Timestamp | None = None) -> MarketData:
        """Bars with start <= timestamp <= end (dates are read as UTC)."""
        lo = 0 if start is None else int(self.timestamps.searchsorted(_utc(start), side="left"))
        hi = self.n_bars if end is None else int(self.timestamps.searchsorted(_utc(end), side="right"))
        return self.slice_time(lo, hi)

    def select(self, symbols: list[str] | tuple[str, ...]) -> MarketData:
        """The named instruments, in the order given (arrays are copied)."""
        missing = [s for s in symbols if s not in self.symbols]
        if missing:
            raise KeyError(f"instruments {missing} not in market '{self.name}' ({self.symbols})")
        index = np.array([self.symbols.index(s) for s in symbols], dtype=np.int64)
        pick = lambda values: tuple(values[i] for i in index)
        return dataclasses.replace(
            self, symbols=tuple(symbols), domains=pick(self.domains),
            asset_classes=pick(self.asset_classes), ohlcv=self.ohlcv[:, index],
            costs=self.costs.take(index),
            sentiment=None if self.sentiment is None else self.sentiment[:, index],
            quality=self.quality[:, index], has_ohlc=self.has_ohlc[index],
            has_volume=self.has_volume[index],
            ground_truth=None if self.ground_truth is None else self.ground_truth.take_instruments(index))

    def select_domains(self, domains: list[str] | tuple[str, ...]) -> MarketData:
        """The instruments of the named domains, in universe order."""
        unknown = [d for d in domains if d not in self.domain_names]
        if unknown:
            raise KeyError(f"domains {unknown} not in market '{self.name}' ({self.domain_names})")
        return self.select([s for s, d in zip(self.symbols, self.domains) if d in domains])

    def split(self, train_end: str | pd.Timestamp, validation_end: str | pd.Timestamp,
              embargo_bars: int = 5) -> DataSplits:
        """Train (<= train_end), validation (<= validation_end) and test, with `embargo_bars`
        bars dropped after each boundary so that no label window straddles two splits."""
        train_stop = int(self.timestamps.searchsorted(_utc(train_end), side="right"))
        val_stop = int(self.timestamps.searchsorted(_utc(validation_end), side="right"))
        return self._split_at(train_stop, val_stop, embargo_bars)

    def split_fractions(self, train: float = 0.7, validation: float = 0.15,
                        embargo_bars: int = 5) -> DataSplits:
        """Chronological split by fractions of the bars (test gets the rest)."""
        if not (0 < train and 0 < validation and train + validation < 1):
            raise ValueError(f"split fractions train={train}, validation={validation} must be "
                             "positive and sum to less than 1")
        train_stop = int(round(self.n_bars * train))
        val_stop = int(round(self.n_bars * (train + validation)))
        return self._split_at(train_stop, val_stop, embargo_bars)

    def _split_at(self, train_stop: int, val_stop: int, embargo: int) -> DataSplits:
        if embargo < 0:
            raise ValueError(f"embargo_bars must be >= 0, got {embargo}")
        bounds = {"train": (0, train_stop), "validation": (train_stop + embargo, val_stop),
                  "test": (val_stop + embargo, self.n_bars)}
        for part, (lo, hi) in bounds.items():
            if hi - lo < 2:
                raise DataValidationError(
                    f"market '{self.name}': the {part} split has {max(hi - lo, 0)} bars "
                    f"(rows {lo}..{hi}) after an embargo of {embargo}; move the split dates")
        return DataSplits(**{part: self.slice_time(lo, hi) for part, (lo, hi) in bounds.items()})


@dataclass(frozen=True)
class DataSplits:
    """Chronological train / validation / test parts of one market."""

    train: MarketData
    validation: MarketData
    test: MarketData

    def __getitem__(self, part: str) -> MarketData:
        if part not in ("train", "validation", "test"):
            raise KeyError(f"split '{part}' is not one of train, validation, test")
        return getattr(self, part)


def _utc(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
