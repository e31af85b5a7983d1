"""Baseline weight schedules: calendar, bounds, causality, and the oracle's use of ground truth."""

import numpy as np
import pytest

from envs.synthetic import SyntheticConfig, generate
from eval.baselines import BASELINES, BaselineConfig, baseline_weights


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=1.5, seed=2))


@pytest.mark.parametrize("name", BASELINES)
def test_calendar_and_bounds(market, name):
    config = BaselineConfig(rebalance_every=5, lookback=120, min_history=60)
    weights = baseline_weights(name, market, config, np.random.default_rng(0))
    assert weights.shape == (market.n_bars, market.n_instruments)
    rebalanced = np.flatnonzero(~np.isnan(weights).any(axis=1))
    if name == "buy_and_hold":
        assert rebalanced.tolist() == [0]
    elif name == "oracle":
        assert len(rebalanced) == market.n_bars
    else:
        assert (np.diff(rebalanced) == 5).all()
    rows = weights[rebalanced]
    assert np.isfinite(rows).all() and (np.abs(rows).sum(axis=1) <= 1.0 + 1e-6).all()
    if name not in ("trend_following", "oracle"):
        assert (rows >= -1e-9).all()                          # long only


@pytest.mark.parametrize("name", ["min_variance", "hrp", "black_litterman", "trend_following"])
def test_weights_use_no_future_data(market, name):
    config = BaselineConfig(lookback=120)
    full = baseline_weights(name, market, config)
    t = 200
    truncated = baseline_weights(name, market.slice_time(0, t + 1), config)
    np.testing.assert_allclose(truncated[t], full[t], atol=1e-6)


def test_sixty_forty_and_oracle(market):
    w = baseline_weights("sixty_forty", market)[0]
    assert w[5:].sum() == pytest.approx(0.6) and w[:5].sum() == pytest.approx(0.4)
    oracle = baseline_weights("oracle", market)
    truth = market.ground_truth
    mean = truth.expected_returns + 0.5 * truth.conditional_vol**2
    # the oracle leans into the instruments the generator expects to rise
    agreement = np.mean(np.sign(oracle[:-1]) == np.sign(mean[:-1]))
    assert agreement > 0.6
    with pytest.raises(KeyError, match="unknown baseline"):
        baseline_weights("astrology", market)
