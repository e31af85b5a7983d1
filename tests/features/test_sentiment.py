"""Sentiment: preprocessing, the whole text path on a tiny random BERT, aggregation, errors."""

import numpy as np
import pandas as pd
import pytest

from envs.synthetic import SyntheticConfig, generate
from features.config import SentimentConfig
from features.sentiment import (
    FEATURE_NAMES,
    SentimentClassifier,
    aggregate,
    assign_messages,
    preprocess_post,
    sentiment_features,
)


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=1, seed=2))


def messages(market) -> pd.DataFrame:
    stamps = market.timestamps
    return pd.DataFrame({
        "timestamp": [stamps[3], stamps[3] + pd.Timedelta(hours=5), stamps[10], stamps[-1] + pd.Timedelta(days=3)],
        "symbol": ["EURUSD", "gold", "SPX500", "EURUSD"],
        "text": ["@trader buy eur 🚀 http://x.co", "gold up to the moon", "sell stock down", "buy"],
    })


def test_preprocess_post_normalises_handles_links_and_emoji():
    assert preprocess_post("@bob: $SPY 🚀🚀 see https://t.co/a1  now") == "@user: $SPY rocket rocket see http now"
    assert preprocess_post("email a@b.com ❤️") == "email a@b.com heavy black heart"


def test_text_path_scores_and_aggregates_per_instrument_and_bar(model_dir, market):
    config = SentimentConfig(model_path=str(model_dir), keywords={"gold": "XAUUSD"}, batch_size=2)
    texts = messages(market)
    features = sentiment_features(market, config, texts)
    assert features.shape == (market.n_bars, market.n_instruments, len(FEATURE_NAMES))
    scores = SentimentClassifier(model_dir, batch_size=3).score(texts["text"].tolist())
    assert np.all(np.abs(scores) <= 1)
    eur, gold, spx = (market.symbols.index(s) for s in ("EURUSD", "XAUUSD", "SPX500"))
    net, count = features[..., 0], features[..., FEATURE_NAMES.index("sentiment_count")]
    assert net[3, eur] == pytest.approx(scores[0], abs=1e-6)    # stamped at bar 3's close
    assert net[4, gold] == pytest.approx(scores[1], abs=1e-6)   # after bar 3: known at bar 4
    assert net[10, spx] == pytest.approx(scores[2], abs=1e-6)
    assert np.count_nonzero(net) == 3                           # the post after the last bar is dropped
    assert count[3, eur] == count[4, gold] == np.log1p(1) and count.sum() == 3 * np.log1p(1)


def test_market_channel_goes_through_the_same_aggregation(market):
    features = sentiment_features(market, SentimentConfig(), None)
    np.testing.assert_array_equal(features[..., 0], market.sentiment)
    attention = features[..., FEATURE_NAMES.index("sentiment_attention")]
    assert (attention == 0).all()                                # one 'message' every bar: no attention signal
    ewma = pd.DataFrame(market.sentiment).ewm(halflife=5.0, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(features[..., FEATURE_NAMES.index("sentiment_ewma")], ewma)


def test_aggregation_does_not_look_ahead(market):
    rng = np.random.default_rng(0)
    net, count = rng.standard_normal((200, 3)), rng.poisson(3.0, (200, 3)).astype(float)
    full = aggregate(net, count, SentimentConfig())
    for t in (5, 61, 150):
        np.testing.assert_allclose(full[:t + 1], aggregate(net[:t + 1], count[:t + 1], SentimentConfig()),
                                   rtol=0, atol=1e-12)


def test_bad_inputs_raise_clear_errors(model_dir, market, tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        SentimentClassifier(tmp_path / "no_such_model")
    with pytest.raises(ValueError, match="empty"):
        assign_messages(messages(market).iloc[:0], market, {})
    with pytest.raises(ValueError, match="'gold'"):
        assign_messages(messages(market), market, {})
    with pytest.raises(ValueError, match="no message table"):
        sentiment_features(market, SentimentConfig(model_path=str(model_dir)), None)
