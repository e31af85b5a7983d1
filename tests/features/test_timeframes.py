"""Multiple timeframes: resampled bars, their causal alignment (a coarse bar is seen only once it
has closed), no look-ahead in any coarse-timeframe feature, the synergies, and the pipeline's
opt-in (the default features unchanged)."""

import dataclasses

import numpy as np
import pytest

from envs.synthetic import SyntheticConfig, generate
from features.config import FeaturesConfig, TimeframeConfig
from features.pipeline import _ohlc, build_features
from features.timeframes import align, coarse_bars, timeframe_features
from tests.envs.test_sim_lookahead import perturbed_after


@pytest.fixture(scope="module")
def intraday():
    return generate(SyntheticConfig(years=0.05, seed=8, bar_minutes=5))


def frames(market, bars=(6, 24)):
    o, h, l, c = _ohlc(market)
    return timeframe_features(o, h, l, c, market.field("volume"), market.has_volume, market.bars_per_year,
                              TimeframeConfig(bars=list(bars)), market.name)


def test_coarse_bars_aggregate_whole_blocks():
    T = 14
    o, h, l, c, v = (np.arange(T, dtype=np.float64)[:, None] + shift for shift in (0.5, 2.0, -1.0, 1.0, 10.0))
    opens, highs, lows, closes, volumes = coarse_bars(o, h, l, c, v, 4)            # 3 blocks, 2 bars left
    np.testing.assert_array_equal(opens[:, 0], [0.5, 4.5, 8.5])
    np.testing.assert_array_equal(highs[:, 0], [5.0, 9.0, 13.0])
    np.testing.assert_array_equal(lows[:, 0], [-1.0, 3.0, 7.0])
    np.testing.assert_array_equal(closes[:, 0], [4.0, 8.0, 12.0])
    np.testing.assert_array_equal(volumes[:, 0], [46.0, 62.0, 78.0])


def test_a_coarse_bar_is_seen_from_its_last_base_bar_on():
    seen = align(np.array([[10.0], [20.0], [30.0]]), 4, 14)[:, 0]
    np.testing.assert_array_equal(seen[:3], np.nan)
    np.testing.assert_array_equal(seen[3:], [10.0] * 4 + [20.0] * 4 + [30.0] * 3)


def test_on_the_intraday_calendar_coarse_bars_are_the_clocks(intraday):
    closes = intraday.timestamps[5::6]
    assert (closes.minute % 30 == 0).all()                         # six five-minute bars: half hours


def test_nothing_after_t_reaches_the_coarse_timeframes(intraday):
    base, names = frames(intraday)
    for cut in (400, 803):                                         # inside a block, and its last bar
        moved, _ = frames(perturbed_after(intraday, cut, seed=cut))
        np.testing.assert_array_equal(base[: cut + 1], moved[: cut + 1], err_msg=f"cut at bar {cut}")
        changed = ~np.isclose(base, moved, equal_nan=True).all(axis=1)                        # (T, C)
        first = changed.argmax(axis=0)
        for column in ("tf6_return", "tf24_return", "pat_breakout_1"):
            k = int(column.split("_")[0][2:]) if column.startswith("tf") else 1
            assert first[names.index(column)] == (cut + 1) // k * k + k - 1 if k > 1 else cut + 1


def test_synergy_is_the_mean_of_the_signals(intraday):
    values, names = frames(intraday)
    column = lambda name: values[..., names.index(name)]
    signals = [n for n in names if n.startswith("pat_")]
    assert len(signals) == 9 and set(np.unique(values[..., [names.index(n) for n in signals]])) <= {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(column("synergy"), np.mean([column(n) for n in signals], axis=0))
    np.testing.assert_allclose(column("synergy_trend"),
                               np.mean([column(f"pat_trend_{k}") for k in (1, 6, 24)], axis=0))
    assert all(np.count_nonzero(column(n)) > 0 for n in signals if not n.startswith("pat_breakout_24"))


@pytest.mark.parametrize(("bars", "message"), [
    ([1], r"features.timeframes.bars=\[1\]: 1 is not a coarser timeframe"),
    ([6, 6], r"repeats a timeframe"),
    ([1000], r"1000 base bars leave 3 coarse bars of the 3744"),
])
def test_bad_timeframes_name_the_key(intraday, bars, message):
    with pytest.raises(ValueError, match=message):
        frames(intraday, bars)


def test_pipeline_adds_them_only_when_asked():
    market = generate(SyntheticConfig(years=4, seed=5))
    plain = FeaturesConfig(cache=False, regime=False)
    default = build_features(market, plain, 300)
    assert not any(n.startswith(("tf", "pat_", "synergy")) for n in default.instrument_names)
    on = build_features(market, dataclasses.replace(plain, timeframes=TimeframeConfig(bars=[5, 20])), 300)
    F = len(default.instrument_names)
    assert on.instrument_names[:F] == default.instrument_names
    np.testing.assert_array_equal(on.instrument_features[..., :F], default.instrument_features)
    signals = [k for k, n in enumerate(on.instrument_names) if n.startswith(("pat_", "synergy"))]
    raw, names = frames(market, (5, 20))
    np.testing.assert_array_equal(on.instrument_features[..., signals],
                                  raw[..., [names.index(on.instrument_names[k]) for k in signals]].astype(np.float32))
    assert "tf20_rsi" in on.instrument_names and on.warmup_bars > default.warmup_bars


def test_the_pipeline_with_timeframes_never_looks_ahead():
    market = generate(SyntheticConfig(years=4, seed=5))
    config = FeaturesConfig(cache=False, regime=False, timeframes=TimeframeConfig(bars=[5, 20]))
    whole = build_features(market, config, 300)
    for t in (650, 659, 803):                                      # inside a 20-bar block, its last bar
        cut = build_features(market.slice_time(0, t + 1), config, 300)
        np.testing.assert_allclose(cut.instrument_features, whole.instrument_features[: t + 1], rtol=0, atol=1e-5,
                                   err_msg=f"instrument features at t={t}")
