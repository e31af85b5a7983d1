"""Regime slices by hand and domain attribution against the backtest's own returns."""

import numpy as np
import pandas as pd
import pytest

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from eval import metrics
from eval.backtest import run_schedule
from eval.baselines import baseline_weights
from eval.slices import domain_attribution, metrics_by_regime, regime_labels


def test_regime_labels_take_the_most_probable_column_and_drop_warm_up():
    index = pd.date_range("2020-01-01", periods=4, tz="UTC")
    probs = pd.DataFrame({"regime_0": [np.nan, 0.7, 0.2, 0.1], "regime_1": [np.nan, 0.3, 0.8, 0.9]}, index=index)
    labels = regime_labels(probs)
    assert labels.index.equals(index[1:]) and labels.tolist() == ["regime_0", "regime_1", "regime_1"]


def test_metrics_by_regime_score_each_regimes_bars_as_one_series():
    rng = np.random.default_rng(0)
    index = pd.date_range("2020-01-01", periods=300, tz="UTC")
    returns = pd.Series(rng.normal(0.0005, 0.01, 300), index=index)
    labels = pd.Series(np.where(np.arange(300) % 3 == 0, "bear", "bull"), index=index)[10:]   # first 10 unlabelled
    table = metrics_by_regime(returns, labels)
    assert table.index.tolist() == ["bear", "bull"]
    bear = returns[10:][labels == "bear"].to_numpy()
    assert table.at["bear", "share"] == pytest.approx(len(bear) / 290)
    assert table.at["bear", "sharpe"] == pytest.approx(metrics.sharpe_ratio(bear)[0])
    assert table.at["bear", "ann_return"] == pytest.approx(metrics.annual_return(bear)[0])
    assert table.at["bull", "var"] == pytest.approx(metrics.value_at_risk(returns[10:][labels == "bull"].to_numpy())[0])
    lonely = labels.copy()
    lonely.iloc[0] = "volatile"                              # one bar: a share, no metrics
    one = metrics_by_regime(returns, lonely)
    assert one.at["volatile", "share"] == pytest.approx(1 / 290) and np.isnan(one.at["volatile", "sharpe"])
    with pytest.raises(ValueError, match="no regime label on any of the 300 return timestamps"):
        metrics_by_regime(returns, labels.set_axis(labels.index + pd.Timedelta(days=1000)))


def test_domain_attribution_adds_up_to_the_backtests_return():
    market = generate(SyntheticConfig(years=1.5, seed=3))
    config = EnvConfig()
    result = run_schedule("equal_weight", market, config,
                          baseline_weights("equal_weight", market, start=config.warmup_bars))
    frames = result.frames(market.symbols)
    domains = {d: list(market.instruments_of(d)) for d in market.domain_names}
    table = domain_attribution(frames["weights"], frames["contributions"], domains)
    assert table["ann_contribution"].sum() == pytest.approx(result.returns.mean() * 252, rel=1e-9)
    assert table["share_of_return"].sum() == pytest.approx(1.0)
    exposure = metrics.exposure_by_domain(result.weights, market.domain_index, len(market.domain_names))
    np.testing.assert_allclose(table["gross_exposure"], exposure)
    # equal weight: each domain holds its instruments' share of the book, long only
    np.testing.assert_allclose(table["net_exposure"], [len(m) / 8 for m in domains.values()], atol=0.03)
    with pytest.raises(ValueError, match="must partition the instruments"):
        domain_attribution(frames["weights"], frames["contributions"], {"forex": ["EURUSD"]})
