"""Indicators against TA-Lib over a grid of price scales and series shapes: every indicator of
features.indicators that TA-Lib also has, to 1e-8 relative, over the whole series.

Series shapes: a random walk; the walk with 600 bars of exactly repeated closes in the middle
(flat OHLC, constant volume); the walk with 600 near-flat bars (noise of 1e-12 relative); and a
walk whose closes repeat in runs of 1 to 6 bars. Each is built at price scales 1e-5 ... 1e5.

Warm-up: TA-Lib's unstable periods are all 0 (asserted), so its first output is the seed itself
(the first SMA for EMA, MACD, RSI and ATR) and every later value depends on that seed. We use the
same seeds, so the NaN rows must be identical and every row after them is compared, the unstable
stretch included. Error: |ours - talib| / |talib|; where TA-Lib's value is exactly 0 the error is
|ours| / unit instead, unit being the indicator's scale (the price scale for price-valued
outputs, the volume scale for OBV, 1 for ratios, 100 for RSI).

%B is compared as 2 %B - 1 = (close - middle) / (width * std), the close's place in the bands:
%B itself is ill-conditioned where the close sits on the lower band (%B near 0), and there
TA-Lib's own rounding of the standard deviation (up to 2e-12 relative on this grid, against an
exact rational computation) alone moves %B by 6e-8 relative.

`python tests/features/test_indicator_numerics.py` prints the worst error per indicator.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
import talib

from features import indicators as ind

SCALES = (1e-5, 1e-2, 1.0, 1e2, 1e5)
SHAPES = ("walk", "flat", "near_flat", "repeated")
N_BARS, N_INSTRUMENTS, STRETCH = 1500, 3, slice(500, 1100)
VOLUME_SCALE = 1e4
RTOL = 1e-8

Bars = dict[str, np.ndarray]


@cache
def market(shape: str, scale: float) -> Bars:
    """(T, N) OHLCV of one series shape at one price scale (closes near `scale`)."""
    rng = np.random.default_rng(SHAPES.index(shape))
    T, N = N_BARS, N_INSTRUMENTS
    close = np.exp(np.cumsum(0.01 * rng.standard_normal((T, N)), axis=0))
    if shape == "repeated":
        runs = np.cumsum(rng.integers(1, 7, T))                  # each close held 1-6 bars
        close = close[np.searchsorted(runs, np.arange(T), side="right")]
    open_ = np.vstack([close[:1], close[:-1]])
    high = np.maximum(open_, close) * (1 + 0.004 * rng.random((T, N)))
    low = np.minimum(open_, close) * (1 - 0.004 * rng.random((T, N)))
    volume = VOLUME_SCALE * (1 + rng.random((T, N)))
    if shape in ("flat", "near_flat"):
        level = close[STRETCH.start - 1]
        noise = 1e-12 * rng.standard_normal((STRETCH.stop - STRETCH.start, N)) if shape == "near_flat" else 0.0
        for price in (open_, high, low, close):
            price[STRETCH] = level * (1 + noise)
        volume[STRETCH] = volume[STRETCH.start - 1]
    bars = {"open": open_, "high": high, "low": low, "close": close}
    bars = {k: np.ascontiguousarray(v * scale) for k, v in bars.items()}
    return {**bars, "volume": volume}


def per_column(function: Callable, *arrays: np.ndarray, **kwargs) -> np.ndarray:
    return np.column_stack([function(*(a[:, j] for a in arrays), **kwargs) for j in range(arrays[0].shape[1])])


def bollinger_reference(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """%B and bandwidth from TA-Lib's bands; %B is 0.5 where the bands have zero width (our
    convention: TA-Lib's ratio is 0/0 there)."""
    upper, middle, lower = (np.column_stack(parts) for parts in
                            zip(*(talib.BBANDS(c[:, j], 20, 2.0, 2.0) for j in range(c.shape[1]))))
    span = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        percent_b = np.where(span == 0, 0.5, (c - lower) / span)
    return percent_b, span / middle


def volume_zscore_reference(v: np.ndarray) -> np.ndarray:
    """(log1p(v) - SMA) / STDDEV over 20 bars, 0 where TA-Lib's STDDEV is 0."""
    log_volume = np.log1p(v)
    std = per_column(talib.STDDEV, log_volume, timeperiod=20, nbdev=1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (log_volume - per_column(talib.SMA, log_volume, timeperiod=20)) / std
    return np.where(std == 0, 0.0, z)


# name -> (ours, TA-Lib's, unit of the output at price scale s)
Case = tuple[Callable[[Bars], np.ndarray], Callable[[Bars], np.ndarray], Callable[[float], float]]
PRICE, RATIO = (lambda s: s), (lambda s: 1.0)
CASES: dict[str, Case] = {
    "sma_5": (lambda b: ind.sma(b["close"], 5), lambda b: per_column(talib.SMA, b["close"], timeperiod=5), PRICE),
    "sma_200": (lambda b: ind.sma(b["close"], 200), lambda b: per_column(talib.SMA, b["close"], timeperiod=200),
                PRICE),
    "ema_20": (lambda b: ind.ema(b["close"], 20), lambda b: per_column(talib.EMA, b["close"], timeperiod=20), PRICE),
    "macd_line": (lambda b: ind.macd(b["close"])[0], lambda b: per_column(lambda x: talib.MACD(x)[0], b["close"]),
                  PRICE),
    "macd_signal": (lambda b: ind.macd(b["close"])[1], lambda b: per_column(lambda x: talib.MACD(x)[1], b["close"]),
                    PRICE),
    "macd_hist": (lambda b: ind.macd(b["close"])[2], lambda b: per_column(lambda x: talib.MACD(x)[2], b["close"]),
                  PRICE),
    "rsi_14": (lambda b: ind.rsi(b["close"], 14), lambda b: per_column(talib.RSI, b["close"], timeperiod=14),
               lambda s: 100.0),
    "bollinger_position": (lambda b: 2 * ind.bollinger(b["close"])[0] - 1,
                           lambda b: 2 * bollinger_reference(b["close"])[0] - 1, RATIO),
    "bollinger_bandwidth": (lambda b: ind.bollinger(b["close"])[1], lambda b: bollinger_reference(b["close"])[1],
                            RATIO),
    "true_range": (lambda b: ind.true_range(b["high"], b["low"], b["close"]),
                   lambda b: per_column(talib.TRANGE, b["high"], b["low"], b["close"]), PRICE),
    "atr_14": (lambda b: ind.atr(b["high"], b["low"], b["close"], 14),
               lambda b: per_column(talib.ATR, b["high"], b["low"], b["close"], timeperiod=14), PRICE),
    "obv": (lambda b: ind.obv(b["close"], b["volume"]), lambda b: per_column(talib.OBV, b["close"], b["volume"]),
            lambda s: VOLUME_SCALE),
    "roc_20": (lambda b: ind.roc(b["close"], 20), lambda b: per_column(talib.ROC, b["close"], timeperiod=20) / 100,
               RATIO),
    "momentum_20": (lambda b: ind.momentum(b["close"], 20), lambda b: per_column(talib.MOM, b["close"], timeperiod=20),
                    PRICE),
    "vwap_20": (lambda b: ind.rolling_vwap(b["high"], b["low"], b["close"], b["volume"], 20),
                lambda b: per_column(talib.VWMA, (b["high"] + b["low"] + b["close"]) / 3.0, b["volume"],
                                     timeperiod=20), PRICE),
    "volume_zscore_20": (lambda b: ind.volume_zscore(b["volume"], 20), lambda b: volume_zscore_reference(b["volume"]),
                         RATIO),
}


def relative_error(ours: np.ndarray, reference: np.ndarray, unit: float) -> np.ndarray:
    """|ours - reference| / |reference|, or / unit where the reference is exactly 0."""
    denominator = np.where(reference == 0, unit, np.abs(reference))
    return np.abs(ours - reference) / denominator


def worst_error(name: str, shape: str, scale: float) -> float:
    """Largest relative error of one indicator on one series; inf if the warm-up NaNs differ."""
    ours_of, reference_of, unit_of = CASES[name]
    bars = market(shape, scale)
    ours, reference = ours_of(bars), reference_of(bars)
    if not np.array_equal(np.isnan(ours), np.isnan(reference)):
        return np.inf
    valid = ~np.isnan(reference)
    return float(relative_error(ours[valid], reference[valid], unit_of(scale)).max())


def test_talib_unstable_periods_are_zero():
    for function in ("EMA", "RSI", "ATR"):
        assert talib.get_unstable_period(function) == 0, function


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("scale", SCALES)
def test_indicator_matches_talib(scale, shape, name):
    assert worst_error(name, shape, scale) <= RTOL


def test_bollinger_keeps_its_width_at_small_prices():
    """Prices near 1e-5 have variances near 1e-16: a fixed 1e-14 threshold collapsed the bands."""
    bars = market("walk", 1e-5)
    bandwidth = ind.bollinger(bars["close"])[1][19:]
    assert (bandwidth > 0).all()
    np.testing.assert_allclose(bandwidth, bollinger_reference(bars["close"])[1][19:], rtol=RTOL, atol=0)


@pytest.mark.parametrize("scale", SCALES)
def test_bollinger_is_exactly_flat_on_flat_windows(scale):
    """Windows inside 300 repeated closes after a volatile walk: a running sum of squares left
    rounding noise of order eps * price**2 as width (above a fixed 1e-14 from prices near 1e2);
    TA-Lib's bands have exactly zero width there."""
    rng = np.random.default_rng(7)
    walk = scale * np.exp(np.cumsum(0.05 * rng.standard_normal((300, N_INSTRUMENTS)), axis=0))
    close = np.vstack([walk, np.repeat(walk[-1:] * 1.0000001, 300, axis=0)])
    inside = slice(300 + 19, None)
    percent_b, bandwidth = (value[inside] for value in ind.bollinger(close))
    assert (bollinger_reference(close)[1][inside] == 0).all()
    assert (bandwidth == 0).all()
    assert (percent_b == 0.5).all()


@pytest.mark.parametrize("scale", SCALES)
def test_rsi_keeps_its_value_through_flat_stretches(scale):
    """Over flat bars Wilder smoothing shrinks the average gain and loss alike, so TA-Lib's RSI
    keeps its value (a fixed 1e-14 threshold on their sum dropped it to 0), drifting only once
    they are subnormal (after ~10,000 bars; it ends at 50 when both reach the smallest one)."""
    walk = market("walk", scale)["close"][:100]
    close = np.vstack([walk, np.repeat(walk[-1:], 12_000, axis=0)])
    ours, reference = ind.rsi(close, 14), per_column(talib.RSI, close, timeperiod=14)
    np.testing.assert_allclose(ours[100:700], np.broadcast_to(ours[99], (600, N_INSTRUMENTS)), rtol=RTOL)
    np.testing.assert_allclose(ours[14:], reference[14:], rtol=RTOL, atol=0)


if __name__ == "__main__":
    worst = {name: max((worst_error(name, shape, scale), shape, scale) for shape in SHAPES for scale in SCALES)
             for name in CASES}
    for name, (error, shape, scale) in worst.items():
        print(f"{name:20s} {error:.3e}  ({shape}, scale {scale:g})")
    print(f"{'worst':20s} {max(error for error, _, _ in worst.values()):.3e}")
