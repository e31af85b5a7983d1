"""Indicators against TA-Lib on real sample data, against pandas where TA-Lib has none, and
their causality: a value at t never changes when the data after t is cut off."""

import numpy as np
import pandas as pd
import pytest
import talib

from envs.samples import load_sample
from features import indicators as ind

TRUNCATIONS = (260, 700, 1500, 3000)


@pytest.fixture(scope="module")
def bars() -> dict[str, np.ndarray]:
    market = load_sample("us_markets").select(["SP500", "NASDAQ"])
    return {k: np.ascontiguousarray(market.field(k)) for k in ("open", "high", "low", "close", "volume")}


def per_column(function, *arrays, **kwargs) -> np.ndarray:
    return np.column_stack([function(*(a[:, j] for a in arrays), **kwargs) for j in range(arrays[0].shape[1])])


def assert_matches(ours: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(reference))
    np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("window", [5, 10, 20, 50, 200])
def test_moving_averages_match_talib(bars, window):
    c = bars["close"]
    assert_matches(ind.sma(c, window), per_column(talib.SMA, c, timeperiod=window))
    assert_matches(ind.ema(c, window), per_column(talib.EMA, c, timeperiod=window))


def test_macd_rsi_atr_obv_match_talib(bars):
    h, l, c, v = (bars[k] for k in ("high", "low", "close", "volume"))
    reference = [np.column_stack(parts) for parts in zip(*(talib.MACD(c[:, j], 12, 26, 9) for j in range(2)))]
    for ours, ref in zip(ind.macd(c, 12, 26, 9), reference):
        assert_matches(ours, ref)
    assert_matches(ind.rsi(c, 14), per_column(talib.RSI, c, timeperiod=14))
    assert_matches(ind.atr(h, l, c, 14), per_column(talib.ATR, h, l, c, timeperiod=14))
    assert_matches(ind.true_range(h, l, c), per_column(talib.TRANGE, h, l, c))
    assert_matches(ind.obv(c, v), per_column(talib.OBV, c, v))


def test_bollinger_roc_momentum_match_talib(bars):
    c = bars["close"]
    upper, middle, lower = (np.column_stack(parts) for parts in
                            zip(*(talib.BBANDS(c[:, j], 20, 2.0, 2.0) for j in range(2))))
    percent_b, bandwidth = ind.bollinger(c, 20, 2.0)
    assert_matches(percent_b, (c - lower) / (upper - lower))
    assert_matches(bandwidth, (upper - lower) / middle)
    for horizon in (5, 20, 60):
        assert_matches(ind.roc(c, horizon), per_column(talib.ROC, c, timeperiod=horizon) / 100)
        assert_matches(ind.momentum(c, horizon), per_column(talib.MOM, c, timeperiod=horizon))


def test_volatility_vwap_and_volume_match_pandas(bars):
    o, h, l, c, v = (bars[k] for k in ("open", "high", "low", "close", "volume"))
    w, bpy = 20, 252.0
    rolling_mean = lambda x: pd.DataFrame(x).rolling(w).mean().to_numpy()
    squared_returns = np.vstack([np.full((1, 2), np.nan), np.log(c[1:] / c[:-1]) ** 2])
    assert_matches(ind.close_to_close_vol(c, w, bpy), np.sqrt(rolling_mean(squared_returns) * bpy))
    parkinson = np.sqrt(rolling_mean(np.log(h / l) ** 2 / (4 * np.log(2))) * bpy)
    assert_matches(ind.parkinson_vol(h, l, w, bpy), parkinson)
    gk = rolling_mean(0.5 * np.log(h / l) ** 2 - (2 * np.log(2) - 1) * np.log(c / o) ** 2)
    assert_matches(ind.garman_klass_vol(o, h, l, c, w, bpy), np.sqrt(np.maximum(gk, 0) * bpy))
    typical = (h + l + c) / 3
    assert_matches(ind.rolling_vwap(h, l, c, v, w), rolling_mean(typical * v) / rolling_mean(v))
    log_volume = pd.DataFrame(np.log1p(v)).rolling(w)
    z = (np.log1p(v) - log_volume.mean().to_numpy()) / log_volume.std(ddof=0).to_numpy()
    assert_matches(ind.volume_zscore(v, w), z)


def all_indicators(b: dict[str, np.ndarray]) -> list[np.ndarray]:
    o, h, l, c, v = (b[k] for k in ("open", "high", "low", "close", "volume"))
    return [ind.sma(c, 200), ind.ema(c, 50), *ind.macd(c), ind.rsi(c), *ind.bollinger(c),
            ind.atr(h, l, c), ind.obv(c, v), ind.rolling_vwap(h, l, c, v, 20), ind.roc(c, 20),
            ind.momentum(c, 60), ind.close_to_close_vol(c, 60, 252.0), ind.parkinson_vol(h, l, 20, 252.0),
            ind.garman_klass_vol(o, h, l, c, 20, 252.0), ind.volume_zscore(v, 20)]


def test_no_indicator_looks_ahead(bars):
    full = all_indicators(bars)
    for t in TRUNCATIONS:
        cut = all_indicators({k: v[:t + 1] for k, v in bars.items()})
        for k, (whole, part) in enumerate(zip(full, cut)):
            np.testing.assert_array_equal(whole[:t + 1], part, err_msg=f"indicator {k} at t={t}")


def test_bad_inputs_raise_clear_errors(bars):
    c = bars["close"][:100]
    with pytest.raises(ValueError, match="longer than the data"):
        ind.sma(c, 200)
    with pytest.raises(ValueError, match="longer than the data"):
        ind.macd(c[:30])
    broken = c.copy()
    broken[40, 1] = np.nan
    with pytest.raises(ValueError, match="row 40, column 1"):
        ind.ema(broken, 10)
    with pytest.raises(ValueError, match="fast < slow"):
        ind.macd(c, 26, 12)
