"""`VecMarketEnv`, E market environments stepped by one Numba kernel, and `MarketEnv`, one of them
as a plain gymnasium environment.

Actions are target weights (signed notional / equity) per instrument. `step` passes them through
the optional risk overlay, then `step_weights` executes them; the hierarchy, which applies its
own overlay, calls `step_weights` directly. Episodes autoreset in the same step
(`AutoresetMode.SAME_STEP`): a finished env's row of the returned observation already starts its
next episode, and `info["final_obs"]` holds its last observation (rows flagged by
`info["_final_obs"]`). Every other info array reports the step just taken, before any reset.
With `env.window = W > 0`, `window_observation()` is an (E, W, N, F) view of the instrument
features of each env's last W bars (`envs.window`), and `info["final_window"]` holds the last
windows of the finished episodes only, in env order (a copy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs import kernels, views
from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.state import (
    StepOutputs,
    allocate_outputs,
    allocate_state,
    cost_rates,
    kernel_params,
)
from envs.tables import build_tables
from envs.window import BarWindow

Overlay = Callable[[np.ndarray], np.ndarray]


class VecMarketEnv(VectorEnv):
    """E independent episodes on one market, advanced together by `envs.kernels.step`.

    With `copy=False`, step returns the env's own buffers (observation and info arrays), which
    the next step overwrites: faster, for callers that copy what they keep (a rollout buffer).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, market: MarketData, config: EnvConfig, num_envs: int,
                 instrument_features: np.ndarray | None = None,   # (T, N, F) float32
                 global_features: np.ndarray | None = None,       # (T, G) float32
                 regime_probs: np.ndarray | None = None,          # (T, K) float32
                 overlay: Overlay | None = None, seed: int | None = None,
                 copy: bool = True) -> None:
        self.num_envs = num_envs
        config.check()
        if num_envs < 1:
            raise ValueError(f"num_envs={num_envs} must be >= 1")
        T, N = market.n_bars, market.n_instruments
        last_start = T - 1 - config.episode_length
        if config.warmup_bars > last_start or config.warmup_bars >= T - 1:
            raise ValueError(
                f"market '{market.name}' has {T} bars: too few for env.warmup_bars="
                f"{config.warmup_bars} plus env.episode_length={config.episode_length} and a step")
        self.market, self.config, self.overlay, self.copy = market, config, overlay, copy
        self.tables = build_tables(market, config, instrument_features, global_features, regime_probs)
        self.domain_index = market.domain_index                                  # (N,)
        D = len(market.domain_names)
        self.layout = views.ObservationLayout(
            n_instruments=N, n_features=self.tables.instrument_features.shape[2], n_domains=D,
            portfolio_window=config.portfolio_window,
            n_global=self.tables.global_observation.shape[1])
        self.domain_members = views.domain_members(self.domain_index, D)
        self.costs = cost_rates(market.costs)
        self.params = kernel_params(config, market)
        self.state = allocate_state(num_envs, N, D, config.portfolio_window)
        self.outputs: StepOutputs = allocate_outputs(num_envs, N, D)
        self.observation = np.zeros((num_envs, self.layout.size), dtype=np.float32)
        self._all_envs = np.arange(num_envs)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.layout.size,), np.float32)
        self.single_action_space = gym.spaces.Box(-config.max_leverage, config.max_leverage, (N,),
                                                  np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._covariance: np.ndarray | None = None                              # this bar's, once asked for
        self._window = (BarWindow(self.tables.instrument_features, num_envs, config.window)
                        if config.window > 0 else None)

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start every env: at random bars (training) or at `warmup_bars` (evaluation); with
        `options={"windows": (starts, ends)}` (E,) bars each, env e's episode runs from starts[e]
        to ends[e] (several windows of one split walked side by side)."""
        super().reset(seed=seed)
        self._start(self._all_envs, *(options or {}).get("windows", ()))
        return self._out(self.observation), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 dict[str, Any]]:
        """Target weights (E, N) -> overlay (if any) -> `step_weights`."""
        targets = actions if self.overlay is None else self.overlay(np.asarray(actions, dtype=np.float64))
        return self.step_weights(targets)

    def step_weights(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                         np.ndarray, dict[str, Any]]:
        """Execute weights (E, N) as given (clipped, and capped by leverage and margin only);
        a NaN weight holds that instrument's position."""
        weights = np.asarray(weights)
        if weights.shape != self.state.positions.shape:
            raise ValueError(f"weights have shape {weights.shape}, expected {self.state.positions.shape}")
        bad = kernels.first_invalid_env(weights, self.state)
        if bad >= 0:
            if self.state.bar[bad] >= self.state.end_bar[bad]:
                raise RuntimeError(f"env {bad}'s episode is over; call reset()")
            raise ValueError(f"weights of env {bad} are infinite: {weights[bad]}")
        kernels.step(weights, self.tables, self.costs, self.params, self.domain_index, self.state,
                     self.outputs, self.observation)
        if self._window is not None:
            self._window.advance(self.state.bar)
        self._covariance = None
        out = self.outputs
        info = self._info()
        done = out.terminated | out.truncated
        if done.any():
            finished = np.flatnonzero(done)
            final_obs = np.zeros_like(self.observation)
            final_obs[finished] = self.observation[finished]
            info["final_obs"], info["_final_obs"] = final_obs, done
            if self._window is not None:
                info["final_window"] = self._window.view()[finished]         # (finished, W, N, F)
            self._start(finished)
        return (self._out(self.observation), self._out(out.reward), self._out(out.terminated),
                self._out(out.truncated), info)

    # ------------------------------------------------------------------ the hierarchy's access
    def set_guidance(self, allocation: np.ndarray, risk_appetite: np.ndarray) -> None:
        """Record the meta-controller's allocation (E, D) and risk appetite (E,), and show them
        in the current instrument observations."""
        self.state.allocation[:] = allocation
        self.state.risk_appetite[:] = risk_appetite
        block = views.instrument_observation(self.observation, self.layout)
        block[:, :, self.layout.instrument_column("allocation")] = self.state.allocation[:, self.domain_index]
        block[:, :, self.layout.instrument_column("risk_appetite")] = self.state.risk_appetite[:, None]

    def instrument_observation(self) -> np.ndarray:
        """(E, N, F + 4) view of the current instrument observations."""
        return views.instrument_observation(self.observation, self.layout)

    def specialist_observation(self, domain: int) -> tuple[np.ndarray, np.ndarray]:
        """Domain `domain`'s instruments (E, n_d, F + 4) and domain state (E, 4)."""
        return views.specialist_observation(self.observation, self.layout, domain,
                                            self.domain_members[domain])

    def window_observation(self) -> np.ndarray:
        """(E, W, N, F) view of each env's instrument features over its last W bars, oldest first
        (the last row is the current bar's); the next step overwrites it. Needs env.window > 0."""
        if self._window is None:
            raise RuntimeError("the window view is off: set env.window to the number of bars it holds")
        return self._window.view()

    def specialist_window(self, domain: int) -> np.ndarray:
        """(E, W, n_d, F) domain `domain`'s instruments in the window (a view when contiguous)."""
        return self.window_observation()[:, :, self.domain_members[domain]]

    def meta_observation(self) -> np.ndarray:
        """(E, meta size) view of the current meta observations."""
        return views.meta_observation(self.observation, self.layout)

    @property
    def equity(self) -> np.ndarray:
        """(E,) current equity (a view of the state)."""
        return self.state.equity

    @property
    def positions(self) -> np.ndarray:
        """(E, N) current signed notional per instrument (a view of the state)."""
        return self.state.positions

    @property
    def weights(self) -> np.ndarray:
        """(E, N) current, drifted weights: positions / equity."""
        return self.state.positions / self.state.equity[:, None]

    @property
    def drawdown(self) -> np.ndarray:
        """(E,) current drawdown from the episode's peak equity."""
        return 1.0 - self.state.equity / self.state.peak_equity

    def covariance(self) -> np.ndarray:
        """(E, N, N) covariance of one bar's returns at each env's current bar, from the EWMA bar
        volatilities and, when the meta observation carries instrument correlations, their EWMA
        correlations (else zero correlation); causal, like every table row at the bar. Computed
        once per bar: the hierarchy's decision and the risk overlay read the same (read-only) array."""
        if self._covariance is None:
            self._covariance = self._bar_covariance()
            self._covariance.flags.writeable = False
        return self._covariance

    def _bar_covariance(self) -> np.ndarray:
        bar = self.state.bar                                                  # (E,)
        vol = self.tables.bar_vol[bar]                                        # (E, N)
        E, N = vol.shape
        correlation = np.broadcast_to(np.eye(N), (E, N, N)).copy()
        if self.config.meta_correlation == "instruments" and N > 1:
            upper = np.triu_indices(N, k=1)
            triangle = self.tables.global_observation[bar, : len(upper[0])]   # (E, N(N-1)/2)
            correlation[:, upper[0], upper[1]] = triangle
            correlation[:, upper[1], upper[0]] = triangle
        return vol[:, :, None] * correlation * vol[:, None, :]

    # ------------------------------------------------------------------ internals
    def _start(self, envs: np.ndarray, starts: np.ndarray | None = None, ends: np.ndarray | None = None) -> None:
        """(Re)start `envs`' episodes: from `starts` to `ends` when given, else as the config says."""
        self._covariance = None
        config, T = self.config, self.market.n_bars
        if starts is not None:
            starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
            if starts.shape != envs.shape or ends.shape != envs.shape or (starts < config.warmup_bars).any() \
                    or (ends <= starts).any() or (ends > T - 1).any():
                raise ValueError(f"windows must be ({len(envs)},) start and end bars with "
                                 f"{config.warmup_bars} <= start < end <= {T - 1}")
        elif config.episode_length == 0:
            starts = np.full(len(envs), config.warmup_bars, dtype=np.int64)
            ends = np.full(len(envs), T - 1, dtype=np.int64)
        else:
            starts = self.np_random.integers(config.warmup_bars, T - config.episode_length,
                                             size=len(envs), dtype=np.int64)
            ends = starts + config.episode_length
        kernels.reset(envs, starts, ends, self.tables, self.params, self.domain_index, self.state,
                      self.observation)
        if self._window is not None:
            self._window.refill(envs, starts)

    def _info(self) -> dict[str, Any]:
        out, state = self.outputs, self.state
        info = {name: self._out(getattr(out, name)) for name in (
            "equity", "drawdown", "log_return", "pnl", "costs", "turnover", "fill_equity",
            "executed_weights", "instrument_reward", "domain_reward", "liquidated")}
        info["ledger_pnl"] = state.ledger_pnl.copy()      # the episode so far, before any reset
        info["ledger_costs"] = state.ledger_costs.copy()
        return info

    def _out(self, array: np.ndarray) -> np.ndarray:
        return array.copy() if self.copy else array


class MarketEnv(gym.Env):
    """One market environment with the same dynamics, for single-env tools and `check_env`."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, market: MarketData, config: EnvConfig, **kwargs: Any) -> None:
        self.vec = VecMarketEnv(market, config, num_envs=1, copy=True, **kwargs)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        observation, _ = self.vec.reset(seed=seed)
        return observation[0], {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.vec.step(np.asarray(action)[None])
        if terminated[0] or truncated[0]:
            observation = info.pop("final_obs")
            info.pop("_final_obs")
        return (observation[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]),
                {key: value[0] for key, value in info.items()})
