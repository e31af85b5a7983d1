"""What a run's policies act in: the market, its splits, the causal features, the run's
effective settings, and the factories of its envs and fresh policies.

An env on a split sees the split's bars plus `warmup_bars` bars of history before them (for its
EWMA estimates and windows; no decision is taken there), so validation and test decisions start
at the split's first bar, with feature rows computed causally on the whole market. Training
envs start their episodes at random bars of the training split, at or after the feature
warm-up. The HMM of the regime features is fitted on the training bars only.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from envs.loading import load_market, split_market
from envs.market_data import DataSplits, MarketData
from envs.synthetic import generate
from envs.vec_env import VecMarketEnv
from features.pipeline import FeatureSet, build_features, fit_regimes
from features.regimes import RegimeDetector
from hierarchy.agents import FlatAgent
from hierarchy.system import HierarchicalSystem
from learners.run.config import TrainConfig
from learners.run.settings import RunSettings
from risk.env_hook import risk_env

VALIDATION_STREAM = 1516        # spawn key of the validation universe's market seed


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


def env_features(config: TrainConfig, market: MarketData, features: FeatureSet) -> dict[str, np.ndarray]:
    """The feature arrays an env on `market` takes (the control leak appended to the instrument
    features when the run asks for it)."""
    instrument = features.instrument_features
    if config.leak_next_return:
        instrument = np.concatenate([instrument, next_return_leak(market, config.env.execution)], axis=-1)
    return {"instrument_features": instrument, "global_features": features.global_features,
            "regime_probs": features.regime_probs}


@dataclass(eq=False)
class Workspace:
    """A run's market, splits, features and settings, and the factories of its envs and policies
    (compared and hashed by identity: what is derived from one is cached per workspace)."""

    config: TrainConfig
    market: MarketData
    splits: DataSplits
    features: FeatureSet
    env_features: dict[str, np.ndarray]      # (T, ...) rows of every feature array an env takes
    settings: RunSettings

    @classmethod
    def build(cls, config: TrainConfig, world_size: int = 1) -> Workspace:
        """The configured market split by `market.split`."""
        market = load_market(config.market)
        return cls.for_splits(config, market, split_market(market, config.market.split), world_size)

    @classmethod
    def for_splits(cls, config: TrainConfig, market: MarketData, splits: DataSplits,
                   world_size: int = 1) -> Workspace:
        """`market` with the given splits (slices of it, e.g. a walk-forward fold's); the fitted
        features see the bars up to the training split's end only."""
        train_end = int(market.timestamps.get_loc(splits.train.timestamps[-1])) + 1
        features = build_features(market, config.features, train_end=train_end)
        warmup = max(config.env.warmup_bars, features.warmup_bars)
        return cls(config, market, splits, features, env_features(config, market, features),
                   RunSettings.resolve(config, warmup, world_size))

    @property
    def warmup_bars(self) -> int:
        return self.settings.warmup_bars

    def start(self, part: str) -> int:
        """Row of the split's first bar in the whole market."""
        return int(self.market.timestamps.get_loc(self.splits[part].timestamps[0]))

    def window(self, part: str) -> tuple[MarketData, dict[str, np.ndarray]]:
        """The market rows an env on `part` runs on and their feature rows (see module docstring).
        A split that starts at row 0 has its own first bars as warm-up."""
        rows = self.rows(part)
        features = {name: array[rows] for name, array in self.env_features.items()}
        return self.market.slice_time(rows.start, rows.stop), features

    def rows(self, part: str) -> slice:
        """The market rows of `window(part)`: the split's bars and the warm-up before them."""
        start = self.start(part)
        return slice(max(start - self.warmup_bars, 0), start + self.splits[part].n_bars)

    def env(self, part: str, num_envs: int, seed: int) -> VecMarketEnv:
        """E training envs on `part` behind the risk overlay (`settings.train_env`)."""
        market, features = self.window(part)
        return risk_env(market, self.settings.train_env, self.config.risk, num_envs, seed=seed, **features)

    def new_system(self) -> HierarchicalSystem:
        """A freshly initialised hierarchy sized from an env's views (with MAPPO's central critic
        under `learner.specialist_critic=central`), its allocation equal and appetite full
        throughout under `ablation.meta=false`."""
        system = HierarchicalSystem(self.env("train", 1, self.config.seed), self.config.hierarchy,
                                    central_critic=self.config.learner.specialist_critic == "central")
        system.fixed_meta = not self.config.ablation.meta
        return system

    def new_flat_agent(self) -> FlatAgent:
        """A freshly initialised flat policy sized from an env's observation."""
        return FlatAgent.for_env(self.env("train", 1, self.config.seed), self.config.hierarchy.specialist_hidden)

    @functools.cached_property
    def regime_detector(self) -> RegimeDetector | None:
        """The regime HMM of the run's features (None without regime features), fitted again on
        the training bars: the fit is seeded, so it is the one the features were built with."""
        if not self.config.features.regime:
            return None
        return fit_regimes(self.market, self.config.features, self.features.train_end)

    def universe_features(self, market: MarketData) -> dict[str, np.ndarray]:
        """The env feature arrays of a fresh market of the run's universe on its calendar (a test
        universe), computed causally with the run's settings and the regime HMM fitted on the
        run's own training bars: what a policy trained on this run would see there."""
        config = dataclasses.replace(self.config.features, cache=False)
        features = build_features(market, config, self.features.train_end, self.regime_detector)
        return env_features(self.config, market, features)

    @functools.cached_property
    def validation_universe(self) -> tuple[MarketData, dict[str, np.ndarray]] | None:
        """A fresh draw of a synthetic market's generator, `curriculum.validation_universe_years`
        long (its own seed stream, apart from the market's and the test universes'), with its
        env features as `universe_features` computes them: what checkpoints are selected on
        when set, instead of the validation split's few years. None when unset or not synthetic."""
        years, market = self.config.curriculum.validation_universe_years, self.config.market
        if years <= 0 or market.source != "synthetic":
            return None
        seed = int(np.random.SeedSequence([market.synthetic.seed, VALIDATION_STREAM]).generate_state(1)[0])
        fresh = generate(dataclasses.replace(market.synthetic, seed=seed, years=years), market.costs)
        return fresh, self.universe_features(fresh)

    def features_for(self, market: MarketData, fit_end: int) -> dict[str, np.ndarray]:
        """The env feature arrays of another market of the run's universe (a crash path, say),
        computed with the run's settings, the regime HMM fitted on its first `fit_end` bars with
        the run's number of regimes, so the networks see inputs of the sizes they trained on."""
        config = dataclasses.replace(self.config.features, cache=False)
        if config.regime:
            states = self.features.regime_probs.shape[1]
            config = dataclasses.replace(config, regimes=dataclasses.replace(
                config.regimes, min_states=states, max_states=states))
        return env_features(self.config, market, build_features(market, config, train_end=fit_end))
