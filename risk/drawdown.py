"""`DrawdownTracker`: each env's drawdown from its equity peak, and the kill switch that
flattens an env whose drawdown passes the limit and holds it flat through a cool-down.

Per env, on every `update(equity)`:
  - trading: the peak rises with equity; drawdown = 1 - equity / peak (0 while the peak is not
    positive). A drawdown above `max_drawdown` fires the kill switch: the env is flat from this
    bar, the trigger is logged, and the cool-down starts;
  - cooling down: the env stays flat for `cooldown` more updates; then it resumes with its peak
    restarted at the equity of the resumption bar (measured from the old peak the drawdown
    would still be over the limit, and the switch would fire again at once).
`reset(envs)` starts those envs' episodes afresh: no peak, no cool-down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KillSwitchTrigger:
    """One firing of the kill switch."""

    env: int
    step: int              # the tracker's update count when it fired (0 for the first update)
    episode_step: int      # updates since the env's episode started (0 for its first)
    drawdown: float
    equity: float
    peak: float


class DrawdownTracker:
    """Drawdowns and kill switches of `n_envs` envs, updated together once per bar."""

    def __init__(self, n_envs: int, max_drawdown: float = 0.15, cooldown: int = 20) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs={n_envs} must be >= 1")
        if not 0.0 < max_drawdown <= 1.0:
            raise ValueError(f"max_drawdown={max_drawdown} must lie in (0, 1]")
        if cooldown < 0:
            raise ValueError(f"cooldown={cooldown} must be >= 0")
        self.n_envs, self.max_drawdown, self.cooldown = n_envs, max_drawdown, cooldown
        self.peak = np.full(n_envs, -np.inf)                  # (E,) -inf: no peak yet
        self.drawdown = np.zeros(n_envs)                      # (E,) at the last update
        self.flat_left = np.zeros(n_envs, dtype=np.int64)     # (E,) cool-down updates to go
        self.episode_step = np.zeros(n_envs, dtype=np.int64)  # (E,)
        self.step = 0
        self.triggers: list[KillSwitchTrigger] = []

    def reset(self, envs: np.ndarray | None = None) -> None:
        """Start the episodes of `envs` (indices or a bool mask (E,); all when left out)."""
        index = slice(None) if envs is None else np.asarray(envs)
        self.peak[index] = -np.inf
        self.drawdown[index] = 0.0
        self.flat_left[index] = 0
        self.episode_step[index] = 0

    def update(self, equity: np.ndarray) -> np.ndarray:
        """Record this bar's equity (E,); returns (E,) bool, True where the env may trade."""
        equity = np.asarray(equity, dtype=np.float64)
        if equity.shape != (self.n_envs,):
            raise ValueError(f"equity has shape {equity.shape}, expected ({self.n_envs},)")
        if not np.isfinite(equity).all():
            env = int(np.argmin(np.isfinite(equity)))
            raise ValueError(f"equity of env {env} is {equity[env]}")
        cooling = self.flat_left > 0
        self.flat_left[cooling] -= 1
        trading = ~cooling
        self.peak[trading] = np.maximum(self.peak[trading], equity[trading])
        with np.errstate(divide="ignore", invalid="ignore"):
            drawdown = np.where(trading & (self.peak > 0), 1.0 - equity / self.peak, 0.0)
        fired = drawdown > self.max_drawdown
        for env in np.flatnonzero(fired):
            self.triggers.append(KillSwitchTrigger(
                env=int(env), step=self.step, episode_step=int(self.episode_step[env]),
                drawdown=float(drawdown[env]), equity=float(equity[env]),
                peak=float(self.peak[env])))
        self.flat_left[fired] = self.cooldown
        self.peak[fired] = -np.inf                  # the peak restarts when trading resumes
        self.drawdown = drawdown
        self.step += 1
        self.episode_step += 1
        return trading & ~fired
