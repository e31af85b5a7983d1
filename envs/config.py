"""`EnvConfig`: every knob of the market simulator, as one plain dataclass for hydra."""

from __future__ import annotations

from dataclasses import dataclass

EXECUTION_MODES: tuple[str, ...] = ("next_open", "close")
META_CORRELATIONS: tuple[str, ...] = ("instruments", "domains")


@dataclass
class EnvConfig:
    """Simulator settings: money, timing, episodes, observation windows and reward penalties.

    Trading costs and margins are not here: they live per instrument in `MarketData.costs`
    (configured per asset class by `envs.costs.CostConfig`).
    """

    initial_equity: float = 1_000_000.0
    # 'next_open': a decision at bar t fills at open[t+1]; 'close': it fills at close[t]
    execution: str = "next_open"
    # bars per training episode, started at a random bar; 0 walks the whole split once from
    # `warmup_bars` to the last bar, the same path in every env (evaluation)
    episode_length: int = 252
    # first decision bar of an episode: earlier bars only feed estimates and windows
    warmup_bars: int = 20
    # bound of each target weight, and cap of gross leverage sum |w_i| (margin caps it too)
    max_leverage: float = 5.0
    # built-in instrument features (used when no feature tensor is given): this many lagged
    # log returns scaled by volatility, the annualised volatility and (if present) sentiment
    return_lags: int = 5
    # meta observation: this many most recent portfolio log returns
    portfolio_window: int = 20
    # sequence view: the instrument features of this many most recent bars, oldest first
    # (`VecMarketEnv.window_observation`); 0: the single-bar observation only
    window: int = 0
    # EWMA half-lives in bars: instrument volatility (costs and features), average traded
    # notional (impact), return correlation (meta), portfolio volatility (tail penalty) and
    # per-domain performance (meta)
    vol_halflife: float = 20.0
    volume_halflife: float = 20.0
    correlation_halflife: float = 60.0
    portfolio_vol_halflife: float = 20.0
    performance_halflife: float = 20.0
    # the meta observation's correlation matrix: of the instruments (N(N-1)/2 entries), or of
    # the equal-weight domain portfolios (D(D-1)/2 entries, for large universes)
    meta_correlation: str = "instruments"
    # portfolio reward = log return - drawdown_penalty * max(drawdown increase, 0)
    #   - turnover_penalty * sum |trade| / equity - tail_penalty * loss beyond tail_sigmas
    #   portfolio volatilities (costs are already inside the log return)
    drawdown_penalty: float = 0.5
    turnover_penalty: float = 0.0
    tail_penalty: float = 0.5
    tail_sigmas: float = 2.0
    # the log return a step is floored at, so ruin (equity <= 0) gets a finite reward
    ruin_log_return: float = -10.0
    # fee on forced trades (margin call, ruin), on top of their ordinary trading costs
    liquidation_fee_bps: float = 0.0

    def check(self) -> None:
        """Raise ValueError naming the key of any setting out of its domain."""
        if self.execution not in EXECUTION_MODES:
            raise ValueError(f"env.execution='{self.execution}' is not one of {EXECUTION_MODES}")
        if self.meta_correlation not in META_CORRELATIONS:
            raise ValueError(f"env.meta_correlation='{self.meta_correlation}' is not one of "
                             f"{META_CORRELATIONS}")
        positive = {"initial_equity": self.initial_equity, "max_leverage": self.max_leverage,
                    "vol_halflife": self.vol_halflife, "volume_halflife": self.volume_halflife,
                    "correlation_halflife": self.correlation_halflife,
                    "portfolio_vol_halflife": self.portfolio_vol_halflife,
                    "performance_halflife": self.performance_halflife}
        for key, value in positive.items():
            if not value > 0:
                raise ValueError(f"env.{key}={value} must be > 0")
        non_negative = {"episode_length": self.episode_length, "warmup_bars": self.warmup_bars,
                        "return_lags": self.return_lags, "window": self.window,
                        "drawdown_penalty": self.drawdown_penalty,
                        "turnover_penalty": self.turnover_penalty, "tail_penalty": self.tail_penalty,
                        "tail_sigmas": self.tail_sigmas,
                        "liquidation_fee_bps": self.liquidation_fee_bps}
        for key, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"env.{key}={value} must be >= 0")
        if self.portfolio_window < 1:
            raise ValueError(f"env.portfolio_window={self.portfolio_window} must be >= 1")
        if not self.ruin_log_return < 0:
            raise ValueError(f"env.ruin_log_return={self.ruin_log_return} must be < 0")
