"""Macro features: publication lag of monthly series, availability flags, causality."""

import numpy as np
import pandas as pd

from envs.samples import load_sample
from envs.synthetic import SyntheticConfig, generate
from features.config import MacroConfig
from features.macro import macro_features, published


def test_monthly_value_appears_only_after_the_publication_lag():
    timestamps = pd.date_range("2020-01-27", "2020-02-14", freq="D", tz="UTC")
    values = np.where(timestamps < pd.Timestamp("2020-01-31", tz="UTC"), 1.0, 2.0)   # Jan value stamped 31st
    seen = published(values, timestamps, lag_days=7)
    first_new = timestamps[np.argmax(seen == 2.0)]
    assert first_new == pd.Timestamp("2020-02-07", tz="UTC")
    assert np.isnan(seen[:7]).all()


def test_sample_market_flags_series_that_have_not_started():
    market = load_sample("us_markets")
    values, names = macro_features(market, MacroConfig())
    vix = market.macro[:, market.macro_names.index("vix")]
    np.testing.assert_array_equal(values[:, names.index("vix_available")], np.isfinite(vix))
    assert np.isnan(values[~np.isfinite(vix), names.index("vix_level")]).all()
    assert "credit_spread_change_21" in names


def test_macro_features_do_not_look_ahead():
    market = generate(SyntheticConfig(years=2, seed=1))
    full, names = macro_features(market, MacroConfig())
    assert names[:3] == ("vix_level", "vix_change_1", "vix_zscore_63")
    for t in (70, 200, 400):
        cut, _ = macro_features(market.slice_time(0, t + 1), MacroConfig())
        np.testing.assert_array_equal(full[:t + 1], cut)
