"""Streaming features equal the batch pipeline: every bar of a whole market, bit for bit, on
synthetic8 and on a universe with a closes-only instrument, one without volume and a monthly
macro series; the state survives a round trip through `state_dict` mid-stream."""

import dataclasses

import numpy as np
import pytest

from envs.synthetic import SyntheticConfig, generate
from features.config import FeaturesConfig
from features.pipeline import compute_features, fit_regimes
from features.streaming import StreamingFeatures, market_bars


def varied(market):
    """The market with instrument 0 closes-only, instrument 1 without volume and the last macro
    series published monthly (its daily values lagged like a month-end print)."""
    ohlcv = market.ohlcv.copy()
    ohlcv[:, 0, :3] = np.nan
    ohlcv[:, 1, 4] = np.nan
    has_ohlc, has_volume = market.has_ohlc.copy(), market.has_volume.copy()
    has_ohlc[0], has_volume[1] = False, False
    monthly = (False,) * (len(market.macro_names) - 1) + (True,)
    return dataclasses.replace(market, ohlcv=ohlcv, has_ohlc=has_ohlc, has_volume=has_volume,
                               macro_is_monthly=monthly)


def streamed(market, config, features, detector, restart_at=None):
    stream = StreamingFeatures.for_market(market, config, features, detector)
    rows = []
    for t, bar in enumerate(market_bars(market)):
        if t == restart_at:
            state = {k: v.copy() for k, v in stream.state_dict().items()}
            stream = StreamingFeatures.for_market(market, config, features, detector)
            stream.load_state_dict(state)
        rows.append(stream.update(bar))
    return (np.stack([r.instrument for r in rows]), np.stack([r.global_ for r in rows]),
            np.stack([r.regime for r in rows]))


@pytest.mark.parametrize("universe", ["synthetic8", "varied"])
def test_streamed_rows_equal_the_batch_pipeline_on_every_bar(universe):
    market = generate(SyntheticConfig(years=3, seed=1))
    if universe == "varied":
        market = varied(market)
    config = FeaturesConfig(cache=False)
    train_end = int(market.n_bars * 0.7)
    detector = fit_regimes(market, config, train_end)
    batch = compute_features(market, config, train_end, detector=detector)
    instrument, global_, regime = streamed(market, config, batch, detector, restart_at=market.n_bars // 2)
    assert instrument.dtype == np.float32 and np.isfinite(instrument).all()
    np.testing.assert_array_equal(instrument, batch.instrument_features)
    np.testing.assert_array_equal(global_, batch.global_features)
    np.testing.assert_array_equal(regime, batch.regime_probs)


def test_a_state_that_does_not_fit_is_named():
    market = generate(SyntheticConfig(years=2, seed=2))
    config = FeaturesConfig(cache=False, regime=False)
    batch = compute_features(market, config, market.n_bars // 2)
    stream = StreamingFeatures.for_market(market, config, batch)
    state = stream.state_dict()
    del state["indicators.rsi.gain"]
    with pytest.raises(KeyError, match="indicators.rsi.gain"):
        StreamingFeatures.for_market(market, config, batch).load_state_dict(state)


@pytest.mark.parametrize("key", ["model_path", "timeframes"])
def test_what_the_stream_does_not_compute_is_refused(key):
    market = generate(SyntheticConfig(years=2, seed=2))
    config = FeaturesConfig(cache=False, regime=False)
    batch = compute_features(market, config, market.n_bars // 2)
    if key == "model_path":
        config.sentiment_model.model_path = "finbert"
    else:
        config.timeframes.bars = [6]
    with pytest.raises(ValueError, match=key):
        StreamingFeatures.for_market(market, config, batch)


def test_raw_indicators_equal_the_batch_to_1e_9():
    """Before normalisation too: every raw indicator of every bar within 1e-9 of
    `indicator_features` (relative to its size; NaN where the batch has warm-up NaN)."""
    from features.pipeline import indicator_features
    from features.streaming import Indicators

    market = varied(generate(SyntheticConfig(years=3, seed=3)))
    config = FeaturesConfig(cache=False, sentiment=False)
    batch, _ = indicator_features(market, config.indicators)
    stream = Indicators(config, market.has_ohlc, market.has_volume, market.bars_per_year, sentiment=False)
    log_returns = market.log_returns
    raw = np.stack([stream.update(bar, log_returns[t]) for t, bar in enumerate(market_bars(market))])
    assert raw.shape == batch.shape
    np.testing.assert_array_equal(np.isnan(raw), np.isnan(batch))
    finite = np.isfinite(batch)
    assert np.all(np.abs(raw[finite] - batch[finite]) <= 1e-9 * np.maximum(1.0, np.abs(batch[finite])))
