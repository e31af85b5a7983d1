"""The risk overlay as the simulator's overlay hook, fed with the env's own state.

At each step the env calls the hook with the target weights (E, N). The hook
  1. restarts the drawdown tracker of envs whose episode began since the last call (a new
     episode's drawdown is not measured from the previous episode's peak);
  2. updates the kill switch with each env's equity;
  3. replaces held instruments (NaN targets) by their current drifted weights, so the overlay
     sees the book that will actually be held;
  4. applies `risk.overlay.RiskOverlay` (its margin rates taken from the market's costs, the
     simulator's own) with the covariance of one bar's returns at each env's
     bar (`VecMarketEnv.covariance`: EWMA volatilities and correlations, causal);
  5. returns NaN again where a held position came through untouched (it stays a hold, with no
     trade), and the overlay's executed weights everywhere else.
`last_report` keeps the overlay's report of the latest call: the decision log's "limits bound".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.vec_env import VecMarketEnv
from risk.drawdown import DrawdownTracker
from risk.kernels import LIMIT_NAMES
from risk.limits import RiskLimits
from risk.overlay import OverlayReport, RiskOverlay


def market_margin_rates(market: MarketData) -> dict[str, float]:
    """Initial margin per asset class from the market's own costs (the simulator's source), the
    highest of the class's instruments, so the overlay and the simulator agree."""
    rates: dict[str, float] = {}
    for asset_class, rate in zip(market.asset_classes, market.costs.initial_margin):
        rates[asset_class] = max(rates.get(asset_class, 0.0), float(rate))
    return rates


class RiskHook:
    """Callable overlay for `VecMarketEnv(overlay=...)`; `bind(env)` once the env exists."""

    def __init__(self, limits: RiskLimits, market: MarketData, num_envs: int) -> None:
        limits = dataclasses.replace(limits, margin_rates=market_margin_rates(market))
        limits.check()
        self.overlay = RiskOverlay.for_universe(limits, market.symbols, market.asset_classes)
        self.tracker = DrawdownTracker(num_envs, limits.max_drawdown, limits.kill_switch_cooldown)
        self.env: VecMarketEnv | None = None
        self.report: OverlayReport | None = None
        self._last_bar = np.full(num_envs, -2, dtype=np.int64)

    def bind(self, env: VecMarketEnv) -> None:
        if env.num_envs != self.tracker.n_envs:
            raise ValueError(f"the hook was built for {self.tracker.n_envs} envs, the env has {env.num_envs}")
        self.env = env

    def __call__(self, targets: np.ndarray) -> np.ndarray:
        env = self.env
        if env is None:
            raise RuntimeError("RiskHook.bind(env) was not called")
        bar = env.state.bar
        restarted = bar != self._last_bar + 1
        if restarted.any():
            self.tracker.reset(np.flatnonzero(restarted))
        self._last_bar = bar.copy()
        return self.apply(targets, env.weights, env.covariance(), env.equity)

    def apply(self, targets: np.ndarray, weights: np.ndarray, covariance: np.ndarray,
              equity: np.ndarray) -> np.ndarray:
        """The overlay on `targets` (E, N) (NaN: hold) of a book holding `weights` (E, N) at
        `equity` (E,) under the bar's `covariance` (E, N, N), one bar further into each env's
        episode (the drawdown tracker updates). Holds the overlay left untouched stay NaN."""
        allowed = self.tracker.update(equity)
        held = np.isnan(targets)
        book = np.where(held, weights, targets)                            # (E, N)
        executed, self.report = self.overlay.apply(book, covariance, allowed)
        return np.where(held & (executed == book), np.nan, executed)

    @property
    def last_report(self) -> dict | None:
        """Env 0's limits that bound at the latest call, and their utilisation of the targets."""
        if self.report is None:
            return None
        report = self.report
        return {"bound": list(report.binding_limits(0)), "halted": bool(report.halted[0]),
                "target_utilisation": dict(zip(LIMIT_NAMES, report.target_utilisation[0].tolist()))}


def risk_env(market: MarketData, env_config: EnvConfig, limits: RiskLimits | None, num_envs: int,
             **env_kwargs) -> VecMarketEnv:
    """A `VecMarketEnv` behind the risk overlay (no overlay when `limits` is None)."""
    hook = None if limits is None else RiskHook(limits, market, num_envs)
    env = VecMarketEnv(market, env_config, num_envs=num_envs, overlay=hook, **env_kwargs)
    if hook is not None:
        hook.bind(env)
    return env
