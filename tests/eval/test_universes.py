"""eval.universes: fresh test universes are deterministic, share the run's calendar and fitted
regime model, are causal, and baselines' walks come from the data lake the second time."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from eval.universes import universe_market, universe_seeds, walk_universes
from learners.run.config import TrainConfig
from learners.run.restore import Policies
from learners.run.workspace import Workspace


def small_config(lake: str, seed: int = 0) -> TrainConfig:
    config = OmegaConf.structured(TrainConfig)
    for key, value in {"seed": seed, "budget.name": "smoke", "market.synthetic.years": 3.0,
                       "market.synthetic.seed": 4, "market.lake_dir": lake, "features.cache": False,
                       "market.split.train_fraction": 0.5, "market.split.validation_fraction": 0.2}.items():
        OmegaConf.update(config, key, value)
    return OmegaConf.to_object(config)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace.build(small_config(str(tmp_path_factory.mktemp("lake"))))


def test_seeds_depend_on_the_market_seed_alone():
    assert universe_seeds(4, 3) == universe_seeds(4, 3)
    assert universe_seeds(4, 3)[:2] == universe_seeds(4, 2)
    assert len(set(universe_seeds(4, 16))) == 16 and 4 not in universe_seeds(4, 16)
    assert universe_seeds(5, 3) != universe_seeds(4, 3)


def test_a_universe_is_the_same_generator_on_the_run_calendar_with_new_prices(workspace):
    seeds = universe_seeds(4, 2)
    first, second = (universe_market(workspace, s) for s in seeds)
    assert first.timestamps.equals(workspace.market.timestamps) and first.symbols == workspace.market.symbols
    assert not np.allclose(first.close, workspace.market.close) and not np.allclose(first.close, second.close)
    np.testing.assert_array_equal(universe_market(workspace, seeds[0]).close, first.close)


def test_the_run_market_seen_as_a_universe_has_the_run_features(workspace):
    """The universes' features use the detector fitted on the run's own training bars: on the run's
    market itself they are the run's features, bit for bit."""
    features = workspace.universe_features(workspace.market)
    for name, array in workspace.env_features.items():
        np.testing.assert_array_equal(features[name], array, err_msg=name)


def test_universe_features_are_causal(workspace):
    market = universe_market(workspace, universe_seeds(4, 1)[0])
    t = market.n_bars - 100
    ohlcv = market.ohlcv.copy()
    ohlcv[t + 1:] *= 1.5
    perturbed = workspace.universe_features(dataclasses.replace(market, ohlcv=ohlcv))
    clean = workspace.universe_features(market)
    for name in clean:
        np.testing.assert_array_equal(perturbed[name][: t + 1], clean[name][: t + 1], err_msg=name)


def test_walks_are_deterministic_and_baselines_come_from_the_lake(workspace):
    torch.manual_seed(0)
    policies = Policies(system=workspace.new_system())
    names = ["hierarchy", "equal_weight", "random"]
    first = walk_universes(workspace, policies, names, "test", 2)
    cached = sorted((Path(workspace.config.market.lake_dir) / "walks").iterdir())
    assert len(cached) == 4                           # 2 universes x 2 baselines; the hierarchy is never cached
    second = walk_universes(workspace, policies, names, "test", 2)
    pd.testing.assert_frame_equal(first, second)
    assert list(first["policy"]) == names * 2 and set(first["universe"]) == {0, 1}
    assert (first["bars"] == workspace.splits.test.n_bars - 1).all() and not first["ruined"].any()
    assert first.groupby("universe")["sharpe"].nunique().eq(3).all()     # every walk its own numbers


def test_the_cost_aware_oracle_is_cached_under_its_tuned_parameters(workspace, monkeypatch):
    import eval.backtest as backtest
    import eval.universes as universes
    from eval.oracle import OracleParams, OracleTuning

    policies = Policies(system=workspace.new_system())
    tuned = universes.walk_universes(workspace, policies, ["oracle_cost_aware"], "test", 1)
    other = OracleTuning(OracleParams(risk_aversion=5.0, band=0.0, rate=1.0), pd.DataFrame(), 0.0)
    for module in (universes, backtest):                            # the key's and the walk's
        monkeypatch.setattr(module, "tuned_oracle", lambda ws: other)
    plain = universes.walk_universes(workspace, policies, ["oracle_cost_aware"], "test", 1)
    assert plain.at[0, "turnover"] != tuned.at[0, "turnover"]     # not the cached walk of the other tuning
