"""DESIGN.md's data flow end to end, without learning: market -> features -> simulator behind
the risk overlay -> hierarchy decisions -> backtest with a decision log."""

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.loading import MarketConfig, load_market, split_market
from envs.synthetic import SyntheticConfig
from eval.backtest import run_system
from features.config import FeaturesConfig
from features.pipeline import build_features
from hierarchy.decision_log import read_decision_log
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from risk.env_hook import RiskHook, risk_env
from risk.limits import RiskLimits


@pytest.fixture(scope="module")
def pipeline():
    config = MarketConfig(synthetic=SyntheticConfig(years=3, seed=2))
    market = load_market(config)
    splits = split_market(market, config.split)
    features = build_features(market, FeaturesConfig(cache=False), train_end=splits.train.n_bars)
    return market, splits, features


def _rows(features, market, part):
    """Feature rows of a split (splits are slices of the market's timestamps)."""
    start = market.timestamps.get_loc(part.timestamps[0])
    index = slice(start, start + part.n_bars)
    return {"instrument_features": features.instrument_features[index],
            "global_features": features.global_features[index],
            "regime_probs": features.regime_probs[index]}


def test_training_envs_run_with_features_risk_and_the_hierarchy(pipeline):
    market, splits, features = pipeline
    assert np.isfinite(features.instrument_features).all() and features.regime_probs.shape[1] >= 2
    env = risk_env(splits.train, EnvConfig(episode_length=50), RiskLimits(), num_envs=8, seed=0,
                   **_rows(features, market, splits.train))
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig())
    assert env.layout.n_features == len(features.instrument_names)
    env.reset(seed=0)
    for _ in range(60):
        decision = system.decide(env)
        _, reward, _, _, info = env.step(decision.target_weights)
        assert np.isfinite(reward).all()
        assert (np.abs(info["executed_weights"]).sum(1) <= RiskLimits().max_gross_leverage + 1e-6).all()
    assert isinstance(env.overlay, RiskHook)


def test_test_split_backtest_with_decision_log(pipeline, tmp_path):
    market, splits, features = pipeline
    rows = _rows(features, market, splits.test)
    probe = risk_env(splits.test, EnvConfig(episode_length=0), RiskLimits(), num_envs=1, seed=0, **rows)
    torch.manual_seed(0)
    system = HierarchicalSystem(probe, HierarchyConfig())
    result = run_system("hierarchy", splits.test, EnvConfig(), system, decision_log=tmp_path / "d.jsonl",
                        limits=RiskLimits(), **rows)
    log = read_decision_log(tmp_path / "d.jsonl")
    assert len(log) == len(result.returns) and log[0]["regime_probs"] is not None
    assert all(isinstance(row["limits_bound"]["bound"], list) for row in log)
