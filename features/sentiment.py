"""Sentiment: score social posts with a local FinBERT-style classifier and aggregate them per
instrument and bar into net sentiment, message count, attention, and the EWMA and momentum of
sentiment.

A message stamped s is assigned to the first bar whose timestamp is >= s (known at that close);
messages after the last bar are dropped. The market's numeric sentiment channel goes through the
same aggregation as one message per instrument and bar.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from envs.market_data import MarketData
from features.config import SentimentConfig

FEATURE_NAMES: tuple[str, ...] = ("sentiment_net", "sentiment_count", "sentiment_attention",
                                  "sentiment_ewma", "sentiment_momentum")
TEXT_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "text")

_HANDLE = re.compile(r"(?<![\w$])@\w+")
_LINK = re.compile(r"(https?://\S+|www\.\S+)")
_SPACE = re.compile(r"\s+")
_EMOJI_JOINERS = {"\ufe0f", "\u200d"}          # variation selector and zero-width joiner


def _emoji_to_text(character: str) -> str:
    """' rocket ' for an emoji (symbol, other; U+1F000 and up), the character otherwise."""
    if ord(character) >= 0x1F000 or unicodedata.category(character) == "So":
        return f" {unicodedata.name(character, '').lower()} "
    return character


def preprocess_post(text: str) -> str:
    """Normalise a social post for a classifier: user handles -> '@user', links -> 'http',
    emoji -> their Unicode names, whitespace collapsed. Cashtags ($AAPL) are kept."""
    text = _LINK.sub("http", _HANDLE.sub("@user", text))
    text = "".join(_emoji_to_text(c) for c in text if c not in _EMOJI_JOINERS)
    return _SPACE.sub(" ", text).strip()


class SentimentClassifier:
    """A sequence classifier with positive/negative/neutral labels, loaded from a local folder
    (never downloaded); `score` returns P(positive) - P(negative) per text."""

    def __init__(self, model_path: str | Path, batch_size: int = 32, max_length: int = 64) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(model_path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"sentiment model folder '{path}' does not exist or has no "
                                    "config.json (features.sentiment_model.model_path)")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
        self.model.eval()
        labels = {name.lower(): index for index, name in self.model.config.id2label.items()}
        if "positive" not in labels or "negative" not in labels:
            raise ValueError(f"sentiment model '{path}' labels {sorted(labels)} lack "
                             "'positive' and 'negative'")
        self.positive, self.negative = labels["positive"], labels["negative"]
        self.batch_size, self.max_length = batch_size, max_length

    def score(self, texts: list[str]) -> np.ndarray:
        """(n,) net sentiment in [-1, 1] of each text, after `preprocess_post`."""
        import torch

        scores = np.empty(len(texts))
        for start in range(0, len(texts), self.batch_size):
            batch = [preprocess_post(t) for t in texts[start:start + self.batch_size]]
            tokens = self.tokenizer(batch, padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            with torch.no_grad():
                probs = torch.softmax(self.model(**tokens).logits, dim=-1).numpy()   # (B, labels)
            scores[start:start + len(batch)] = probs[:, self.positive] - probs[:, self.negative]
        return scores


def read_texts(path: str | Path) -> pd.DataFrame:
    """A message table (timestamp, symbol, text) from CSV or Parquet, timestamps in UTC."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"message table '{path}' does not exist (features.sentiment_model.texts_path)")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in TEXT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"message table '{path}' lacks columns {missing} (has {list(table.columns)})")
    return table


def assign_messages(table: pd.DataFrame, market: MarketData,
                    keywords: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(bar, instrument) indices of each message: bar = first bar stamped at or after it
    (-1 when after the last bar); symbol column matched to symbols, else through `keywords`."""
    if len(table) == 0:
        raise ValueError("message table is empty: no text to score")
    stamps = pd.DatetimeIndex(pd.to_datetime(table["timestamp"], utc=True))
    bars = market.timestamps.searchsorted(stamps, side="left")
    bars = np.where(bars < market.n_bars, bars, -1)
    lookup = {s: i for i, s in enumerate(market.symbols)}
    lookup.update({k: market.symbols.index(s) for k, s in keywords.items() if s in lookup})
    keys = table["symbol"].astype(str).to_numpy()
    unknown = sorted({k for k in keys if k not in lookup})
    if unknown:
        raise ValueError(f"message table names {unknown[:5]} that are neither symbols of market "
                         f"'{market.name}' nor configured keywords")
    return bars, np.array([lookup[k] for k in keys], dtype=np.int64)


def daily_sentiment(scores: np.ndarray, bars: np.ndarray, instruments: np.ndarray,
                    n_bars: int, n_instruments: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) mean score and (T, N) message count per bar and instrument (mean 0 where none)."""
    keep = bars >= 0
    total = np.zeros((n_bars, n_instruments))
    count = np.zeros((n_bars, n_instruments))
    np.add.at(total, (bars[keep], instruments[keep]), scores[keep])
    np.add.at(count, (bars[keep], instruments[keep]), 1.0)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0), count


def aggregate(net: np.ndarray, count: np.ndarray, config: SentimentConfig) -> np.ndarray:
    """(T, N, 5) `FEATURE_NAMES` from per-bar net sentiment and message counts: net; log(1 + count);
    attention (z-score of log(1 + count) over `attention_window` bars, 0 where constant); EWMA of
    net with `ewma_halflife`; momentum = EWMA now minus EWMA `momentum_window` bars ago."""
    if net.shape != count.shape:
        raise ValueError(f"sentiment net {net.shape} and count {count.shape} shapes differ")
    frame = pd.DataFrame(np.log1p(count))
    rolling = frame.rolling(config.attention_window, min_periods=2)
    std = rolling.std().to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        attention = np.where(std > 0, (frame.to_numpy() - rolling.mean().to_numpy()) / std, 0.0)
    ewma = pd.DataFrame(net).ewm(halflife=config.ewma_halflife, adjust=False).mean().to_numpy()
    lag = config.momentum_window
    momentum = np.full_like(ewma, np.nan)
    momentum[lag:] = ewma[lag:] - ewma[:-lag]
    return np.stack([net, frame.to_numpy(), attention, ewma, momentum], axis=-1)


def sentiment_features(market: MarketData, config: SentimentConfig,
                       texts: pd.DataFrame | None = None) -> np.ndarray | None:
    """(T, N, 5) sentiment features: from `texts` scored by the model at `config.model_path`
    when both are given, else from the market's numeric channel; None when neither exists."""
    T, N = market.n_bars, market.n_instruments
    if texts is not None or config.model_path:
        if texts is None:
            raise ValueError("features.sentiment_model.model_path is set but no message table is "
                             "given (features.sentiment_model.texts_path)")
        if not config.model_path:
            raise ValueError("a message table is given but features.sentiment_model.model_path is empty")
        bars, instruments = assign_messages(texts, market, config.keywords)
        classifier = SentimentClassifier(config.model_path, config.batch_size, config.max_length)
        scores = classifier.score(texts["text"].astype(str).tolist())
        net, count = daily_sentiment(scores, bars, instruments, T, N)
        return aggregate(net, count, config)
    if market.sentiment is None:
        return None
    return aggregate(market.sentiment, np.ones((T, N)), config)
