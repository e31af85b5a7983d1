"""The real sample universes load from the packages' shipped files and pass validation."""

import numpy as np
import pytest

from envs.loading import MarketConfig, SplitConfig, load_market, split_market
from envs.market_data import FORWARD_FILLED


@pytest.fixture(scope="module")
def us_markets():
    return load_market(MarketConfig(source="us_markets"))


def test_us_equity_sectors():
    market = load_market(MarketConfig(source="us_equity_sectors"))
    assert market.n_instruments == 21 and market.symbols[-1] == "SP500"
    assert str(market.timestamps[0].date()) == "1990-01-02" and market.timestamps[-1].year == 2022
    assert "health_care" in market.domain_names and len(market.instruments_of("health_care")) == 5
    assert not market.has_ohlc.any() and np.isnan(market.field("high")).all()   # closes only
    assert market.asset_classes.count("equity") == 20


def test_us_markets(us_markets):
    m = us_markets
    assert m.symbols == ("SP500", "NASDAQ", "WTI") and m.has_ohlc.tolist() == [True, True, False]
    assert m.timestamps[0].year == 1999 and m.timestamps[-1].year == 2018
    assert m.macro_names == ("vix", "credit_spread") and m.macro_is_monthly == (False, True)
    vix = m.macro[:, 0]
    started = m.timestamps >= "2014-01-03"                # arch's VIX file begins there
    assert np.isnan(vix[~started]).all() and not np.isnan(vix[started]).any()
    # the NYSE closure after 11 September 2001 is forward-filled and flagged, WTI kept trading
    closed = (m.timestamps >= "2001-09-11") & (m.timestamps <= "2001-09-14")
    assert (m.quality[closed, 0] == FORWARD_FILLED).all() and (m.quality[closed, 2] == 0).any()
    # the January credit spread is only known from 31 January
    january = m.macro[(m.timestamps >= "2005-01-03") & (m.timestamps <= "2005-01-28"), 1]
    assert len(set(january)) == 1


def test_us_markets_splits_by_configured_dates(us_markets):
    splits = split_market(us_markets, SplitConfig(train_end="2011-12-31", validation_end="2014-12-31"))
    assert splits.train.timestamps[-1].year == 2011 and splits.test.timestamps[0].year == 2015


def test_eurusd_hourly():
    market = load_market(MarketConfig(source="eurusd_hourly"))
    assert market.symbols == ("EURUSD",) and market.n_bars == 6225
    assert (np.diff(market.timestamps.asi8) >= 3600 * 10**9).all()
    assert market.costs.half_spread_pips[0] > 0 and market.costs.pip_size[0] == 1e-4


def test_unknown_source():
    with pytest.raises(KeyError, match="market.source 'bloomberg'"):
        load_market(MarketConfig(source="bloomberg"))
