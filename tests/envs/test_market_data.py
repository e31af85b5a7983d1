"""MarketData: invariants, selections, splits with embargo, and the exact Parquet round trip."""

import dataclasses

import numpy as np
import pytest

from envs.io import SCHEMA_VERSION, read_market, write_market
from envs.market_data import CLOSE, HIGH, DataValidationError
from envs.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=3))


def test_shapes_and_dtypes(market):
    T, N = market.n_bars, market.n_instruments
    assert market.ohlcv.shape == (T, N, 5) and market.ohlcv.dtype == np.float64
    assert market.log_returns.shape == (T, N) and (market.log_returns[0] == 0).all()
    np.testing.assert_allclose(np.exp(market.log_returns[1:].cumsum(0)) * market.close[0], market.close[1:])
    assert market.domain_names == ("forex", "commodities", "equity")
    assert market.domain_index.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert market.instruments_of("commodities") == ("XAUUSD", "WTIUSD")


def test_invariants_raise_with_culprit(market):
    ohlcv = market.ohlcv.copy()
    ohlcv[7, 5, HIGH] = ohlcv[7, 5, CLOSE] * 0.5
    with pytest.raises(DataValidationError, match=r"high < low for SPX500 at row 7"):
        dataclasses.replace(market, ohlcv=ohlcv)
    with pytest.raises(DataValidationError, match="strictly increasing"):
        dataclasses.replace(market, timestamps=market.timestamps[::-1])
    with pytest.raises(DataValidationError, match="asset class 'crypto'"):
        dataclasses.replace(market, asset_classes=("crypto",) * 8)


def test_select_and_select_domains_keep_everything_aligned(market):
    sub = market.select(["US30", "EURUSD"])
    assert sub.symbols == ("US30", "EURUSD") and sub.domains == ("equity", "forex")
    assert np.array_equal(sub.ohlcv[:, 0], market.ohlcv[:, 7])
    assert np.array_equal(sub.ground_truth.expected_returns[:, 1], market.ground_truth.expected_returns[:, 0])
    assert sub.costs.pip_size.tolist() == [market.costs.pip_size[7], market.costs.pip_size[0]]
    assert market.select_domains(["commodities"]).symbols == ("XAUUSD", "WTIUSD")
    with pytest.raises(KeyError, match="BTCUSD"):
        market.select(["BTCUSD"])


def test_splits_are_chronological_with_embargo(market):
    splits = market.split_fractions(0.6, 0.2, embargo_bars=4)
    train, val, test = splits.train, splits.validation, splits.test
    assert train.timestamps[-1] < val.timestamps[0] < val.timestamps[-1] < test.timestamps[0]
    index = market.timestamps.get_indexer
    assert index([val.timestamps[0]])[0] - index([train.timestamps[-1]])[0] == 5
    assert index([test.timestamps[0]])[0] - index([val.timestamps[-1]])[0] == 5
    assert np.shares_memory(train.ohlcv, market.ohlcv)         # slices are views
    by_date = market.split(str(market.timestamps[200].date()), str(market.timestamps[350].date()), 0)
    assert by_date.train.n_bars == 201 and by_date.validation.n_bars == 150
    with pytest.raises(DataValidationError, match="the test split has"):
        market.split(str(market.timestamps[200].date()), str(market.timestamps[-2].date()), 5)


def test_parquet_round_trip_is_exact(market, tmp_path):
    folder = write_market(market, tmp_path / "m")
    back = read_market(folder)
    assert back.timestamps.equals(market.timestamps) and back.symbols == market.symbols
    for name in ("ohlcv", "macro", "sentiment", "quality", "has_ohlc", "has_volume"):
        assert np.array_equal(getattr(back, name), getattr(market, name)), name
    for name, values in market.costs.as_dict().items():
        assert np.array_equal(back.costs.as_dict()[name], values), name
    gt, bt = market.ground_truth, back.ground_truth
    assert np.array_equal(gt.regime, bt.regime) and gt.regime_names == bt.regime_names
    assert np.array_equal(gt.expected_returns, bt.expected_returns)
    assert np.array_equal(gt.regime_correlation, bt.regime_correlation)
    assert back.macro_names == market.macro_names and back.attrs == market.attrs


def test_parquet_schema_version_is_checked(market, tmp_path):
    import json

    import pyarrow.parquet as pq

    folder = write_market(market, tmp_path / "m")
    table = pq.read_table(folder / "bars.parquet")
    meta = json.loads(table.schema.metadata[b"hmarl"])
    meta["schema_version"] = SCHEMA_VERSION + 1
    pq.write_table(table.replace_schema_metadata({b"hmarl": json.dumps(meta)}), folder / "bars.parquet")
    with pytest.raises(DataValidationError, match="schema version"):
        read_market(folder)
    with pytest.raises(DataValidationError, match="missing"):
        read_market(tmp_path / "nothing")
