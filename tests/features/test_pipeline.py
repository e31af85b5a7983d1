"""The feature pipeline: contract shapes, finiteness, no look-ahead, ablations, cache."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from envs.samples import load_sample
from envs.synthetic import SyntheticConfig, generate
from features.config import FeaturesConfig
from features.pipeline import build_features
from features.sentiment import FEATURE_NAMES as SENTIMENT_NAMES

TRAIN_END = 300


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=4, seed=5))


@pytest.fixture(scope="module")
def config() -> FeaturesConfig:
    return FeaturesConfig(cache=False)


@pytest.fixture(scope="module")
def full(market, config):
    return build_features(market, config, TRAIN_END)


def test_tensors_meet_the_simulator_contract(market, full):
    T, N = market.n_bars, market.n_instruments
    assert full.instrument_features.shape == (T, N, len(full.instrument_names))
    assert full.global_features.shape == (T, len(full.global_names))
    assert full.regime_probs.shape == (T, len(full.regime_names))
    for tensor in (full.instrument_features, full.global_features, full.regime_probs):
        assert tensor.dtype == np.float32 and np.isfinite(tensor).all()
    warm_up = full.instrument_features[:199, :, full.instrument_names.index("sma_ratio_200")]
    assert (warm_up == 0).all()                                  # warm-up NaNs become 0
    assert set(SENTIMENT_NAMES) <= set(full.instrument_names)
    np.testing.assert_allclose(full.regime_probs.sum(axis=1), 1.0, rtol=1e-5)
    assert full.timestamps.equals(market.timestamps)


def test_warmup_is_flagged_in_the_manifest(full, config):
    # the longest window is the 200-bar SMA: first value at row 199, standardised min_periods later
    assert full.warmup_bars == 199 + config.normalization.min_periods - 1
    sma_200 = full.instrument_features[:, :, full.instrument_names.index("sma_ratio_200")]
    assert (sma_200[:full.warmup_bars] == 0).all() and (sma_200[full.warmup_bars] != 0).all()
    assert full.train_end == TRAIN_END


def test_train_end_may_be_a_date(market, config, full):
    dated = build_features(market, dataclasses.replace(config, sentiment=False),
                           market.timestamps[TRAIN_END - 1].strftime("%Y-%m-%d"))
    assert dated.train_end == TRAIN_END
    np.testing.assert_array_equal(dated.regime_probs, full.regime_probs)


def test_unfitted_features_never_look_ahead_even_in_the_training_bars(market, config):
    ablated = dataclasses.replace(config, regime=False)
    whole = build_features(market, ablated, TRAIN_END)
    for t in (199, 218, 240, 270, 299):          # the 200-bar SMA needs 200 bars of data
        cut = build_features(market.slice_time(0, t + 1), ablated, min(TRAIN_END, t + 1))
        for name in ("instrument_features", "global_features"):
            np.testing.assert_allclose(getattr(cut, name), getattr(whole, name)[:t + 1], rtol=0, atol=1e-5,
                                       err_msg=f"{name} at t={t}")


def test_no_feature_looks_ahead(market, config, full):
    for t in (TRAIN_END, 420, 640, 1007):
        cut = build_features(market.slice_time(0, t + 1), config, TRAIN_END)
        for name in ("instrument_features", "global_features", "regime_probs"):
            np.testing.assert_allclose(getattr(cut, name), getattr(full, name)[:t + 1], rtol=0, atol=1e-5,
                                       err_msg=f"{name} at t={t}")


def test_ablation_switches_drop_sentiment_and_regimes(market, config, full):
    ablated = build_features(market, dataclasses.replace(config, sentiment=False, regime=False), TRAIN_END)
    assert not set(SENTIMENT_NAMES) & set(ablated.instrument_names)
    assert ablated.regime_probs.shape == (market.n_bars, 0)
    kept = [full.instrument_names.index(n) for n in ablated.instrument_names]
    np.testing.assert_array_equal(ablated.instrument_features, full.instrument_features[..., kept])


def test_closes_only_instruments_fall_back_and_stay_finite():
    market = load_sample("us_markets")
    features = build_features(market, FeaturesConfig(cache=False, regime=False), 2000)
    assert np.isfinite(features.instrument_features).all()
    names = features.instrument_names
    wti = market.symbols.index("WTI")
    flags = features.instrument_features[:, wti]
    assert (flags[:, names.index("has_ohlc")] == 0).all() and (flags[:, names.index("has_volume")] == 0).all()
    assert (flags[:, names.index("volume_z_20")] == 0).all()
    np.testing.assert_array_equal(flags[:, names.index("rv_parkinson_20")], flags[:, names.index("rv_cc_20")])


def test_cache_round_trip_and_key(market, config, full, tmp_path):
    cached = dataclasses.replace(config, cache=True, cache_root=str(tmp_path))
    built = build_features(market, cached, TRAIN_END)
    loaded = build_features(market, cached, TRAIN_END)
    assert "cache_load" in loaded.stage_seconds and "indicators" in built.stage_seconds
    for name in ("instrument_features", "global_features", "regime_probs"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(full, name))
    assert loaded.instrument_names == full.instrument_names and loaded.regime_names == full.regime_names
    assert (loaded.warmup_bars, loaded.train_end) == (full.warmup_bars, full.train_end)
    build_features(market, cached, TRAIN_END + 1)
    assert len(list((tmp_path / "features").iterdir())) == 2


def test_text_sentiment_runs_through_the_pipeline_and_keys_the_cache(market, config, model_dir, tmp_path):
    stamps = market.timestamps[::3]
    posts = pd.DataFrame({"timestamp": stamps,
                          "symbol": [market.symbols[k % market.n_instruments] for k in range(len(stamps))],
                          "text": ["buy the stock up 🚀" if k % 2 else "@user sell down http://x.co"
                                   for k in range(len(stamps))]})
    path = tmp_path / "posts.csv"
    posts.to_csv(path, index=False)
    text = dataclasses.replace(config.sentiment_model, model_path=str(model_dir), texts_path=str(path))
    cached = dataclasses.replace(config, regime=False, sentiment_model=text, cache=True,
                                 cache_root=str(tmp_path / "lake"))
    scored = build_features(market, cached, TRAIN_END)
    channel = build_features(market, dataclasses.replace(config, regime=False), TRAIN_END)
    columns = [scored.instrument_names.index(name) for name in SENTIMENT_NAMES]
    assert np.isfinite(scored.instrument_features).all()
    assert not np.array_equal(scored.instrument_features[..., columns], channel.instrument_features[..., columns])
    posts.iloc[:-1].to_csv(path, index=False)                   # another message table: another entry
    build_features(market, cached, TRAIN_END)
    assert len(list((tmp_path / "lake" / "features").iterdir())) == 2


def test_bad_inputs_raise_clear_errors(market, config):
    with pytest.raises(ValueError, match="train_end=0"):
        build_features(market, config, 0)
    short = market.slice_time(0, 150)
    with pytest.raises(ValueError, match="longer than the data"):
        build_features(short, config, 100)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        texts = dataclasses.replace(config.sentiment_model, texts_path="missing.csv")
        build_features(market, dataclasses.replace(config, sentiment_model=texts), TRAIN_END)
