"""What a training run is built from: the market, its splits, the causal features, and the
simulators and hierarchy on each split (part of the composition root with `learners.train`).

An env on a split sees the split's bars plus `warmup_bars` bars of history before them (for its
EWMA estimates and windows; no decision is taken there), so validation and test decisions start
at the split's first bar, with feature rows computed causally on the whole market. Training
envs start their episodes at random bars of the training split, at or after the feature
warm-up. The HMM of the regime features is fitted on the training bars only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from envs.loading import load_market, split_market
from envs.market_data import DataSplits, MarketData
from envs.vec_env import VecMarketEnv
from features.pipeline import FeatureSet, build_features
from hierarchy.risk_hook import risk_env
from hierarchy.system import HierarchicalSystem
from learners.train_config import TrainConfig

SPLITS = ("train", "validation", "test")


def next_return_leak(market: MarketData, execution: str) -> np.ndarray:
    """(T, N, 1) float32: the log return a position decided at bar t earns from its fill to the
    close of t + 1 (open or close of t + 1 by `execution`; closes-only instruments fill at the
    close of t), scaled by its standard deviation. Row T - 1 is zero. For control runs only."""
    close = market.close
    fill = np.where(market.has_ohlc[None, :] & (execution == "next_open"), market.field("open"),
                    np.vstack([close[:1], close[:-1]]))
    leak = np.zeros_like(close)
    leak[:-1] = np.log(close[1:] / fill[1:])
    scale = leak.std(axis=0)
    return (leak / np.where(scale > 0, scale, 1.0)).astype(np.float32)[..., None]


@dataclass
class Workspace:
    """A run's market, splits and features, and the factories of its envs and hierarchy."""

    config: TrainConfig
    market: MarketData
    splits: DataSplits
    features: FeatureSet
    instrument_features: np.ndarray      # (T, N, F) with the control leak appended if asked
    warmup_bars: int                     # history every env gets before its first decision

    @classmethod
    def build(cls, config: TrainConfig) -> Workspace:
        """The configured market split by `market.split`."""
        market = load_market(config.market)
        return cls.for_splits(config, market, split_market(market, config.market.split))

    @classmethod
    def for_splits(cls, config: TrainConfig, market: MarketData, splits: DataSplits) -> Workspace:
        """`market` with the given splits (slices of it, e.g. a walk-forward fold's); the fitted
        features see the bars up to the training split's end only."""
        train_end = int(market.timestamps.get_loc(splits.train.timestamps[-1])) + 1
        features = build_features(market, config.features, train_end=train_end)
        instrument = features.instrument_features
        if config.leak_next_return:
            instrument = np.concatenate([instrument, next_return_leak(market, config.env.execution)], axis=-1)
        warmup = max(config.env.warmup_bars, features.warmup_bars)
        return cls(config, market, splits, features, instrument, warmup)

    def start(self, part: str) -> int:
        """Row of the split's first bar in the whole market."""
        return int(self.market.timestamps.get_loc(self.splits[part].timestamps[0]))

    def window(self, part: str) -> tuple[MarketData, dict[str, np.ndarray]]:
        """The market rows an env on `part` runs on and their feature rows (see module docstring).
        A split that starts at row 0 has its own first bars as warm-up."""
        start = self.start(part)
        first = max(start - self.warmup_bars, 0)
        stop = start + self.splits[part].n_bars
        rows = slice(first, stop)
        features = {"instrument_features": self.instrument_features[rows],
                    "global_features": self.features.global_features[rows],
                    "regime_probs": self.features.regime_probs[rows]}
        return self.market.slice_time(first, stop), features

    def env(self, part: str, num_envs: int, seed: int) -> VecMarketEnv:
        """E training envs on `part` behind the risk overlay. Episodes last `env.episode_length`
        bars at most `curriculum.rollout_bars`: every rollout restarts the envs anyway, and
        shorter episodes let them start anywhere in the split, its last bars included."""
        market, features = self.window(part)
        length = self.config.env.episode_length
        rollout = self.config.curriculum.rollout_bars
        env_config = dataclasses.replace(self.config.env, warmup_bars=self.warmup_bars,
                                         episode_length=min(length, rollout) if length > 0 else rollout)
        return risk_env(market, env_config, self.config.risk, num_envs, seed=seed, **features)

    def system(self, env: VecMarketEnv) -> HierarchicalSystem:
        """A freshly initialised hierarchy sized from `env`'s views."""
        return HierarchicalSystem(env, self.config.hierarchy)
