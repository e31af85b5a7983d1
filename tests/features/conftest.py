"""Shared fixtures of the feature tests: a tiny randomly initialised FinBERT-style classifier."""

import os
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")      # nothing is ever downloaded

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "@", "user", "http", "rocket", "stock",
         "up", "down", "buy", "sell", "$", "eur", "gold", "to", "the", "moon"]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A saved BertForSequenceClassification with positive/negative/neutral labels and its
    tokenizer, as a FinBERT folder would hold them."""
    folder = tmp_path_factory.mktemp("tiny_finbert")
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=37, num_labels=3,
                        id2label={0: "positive", 1: "negative", 2: "neutral"},
                        label2id={"positive": 0, "negative": 1, "neutral": 2})
    BertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder
