"""Preallocated arrays of the simulator: per-env state, per-step outputs and kernel parameters.

Money is float64. A step writes into these arrays in place and allocates nothing. The ledger
is the single source of truth for equity: equity = initial + cumulative PnL - cumulative costs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from envs.config import EnvConfig
from envs.costs import InstrumentCosts
from envs.market_data import MarketData
from envs.tables import TRADING_DAYS_PER_YEAR, ewma_decay

# columns of every per-kind cost array (the ledger's and a step's)
COST_KINDS: tuple[str, ...] = ("spread", "commission", "slippage", "impact", "financing", "liquidation")
SPREAD, COMMISSION, SLIPPAGE, IMPACT, FINANCING, LIQUIDATION = range(len(COST_KINDS))


class CostRates(NamedTuple):
    """Per-instrument cost and margin rates as fractions, (N,) float64 each."""

    spread: np.ndarray             # half-spread in bps of notional, as a fraction
    spread_pips: np.ndarray        # half-spread in pips times pip size (price units)
    commission: np.ndarray
    slippage_vol_coef: np.ndarray
    impact_coef: np.ndarray
    financing_spread: np.ndarray   # annual, over the short rate
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray


class KernelParams(NamedTuple):
    """Scalar settings the kernels read."""

    initial_equity: float
    max_leverage: float
    daily_vol_factor: float        # sqrt(bars per trading day): bar volatility -> daily
    bars_per_year: float
    drawdown_penalty: float
    turnover_penalty: float
    tail_penalty: float
    tail_sigmas: float
    ruin_log_return: float
    liquidation_fee: float         # fraction of forced traded notional
    portfolio_decay: float         # EWMA weight of the portfolio variance
    performance_decay: float       # EWMA weight of per-domain performance


class EnvState(NamedTuple):
    """Everything that evolves in E environments (N instruments, D domains, W window)."""

    bar: np.ndarray                # (E,) int64, the bar of the current decision
    end_bar: np.ndarray            # (E,) int64, the episode is truncated on reaching it
    equity: np.ndarray             # (E,) float64, marked at close[bar]
    peak_equity: np.ndarray        # (E,) float64
    positions: np.ndarray          # (E, N) float64, signed notional in money at close[bar]
    cost_basis: np.ndarray         # (E, N) float64, notional paid for the open positions
    ledger_pnl: np.ndarray         # (E,) float64, cumulative PnL of the episode
    ledger_costs: np.ndarray       # (E, 6) float64, cumulative costs by COST_KINDS
    portfolio_returns: np.ndarray  # (E, W) float64, ring of past log returns
    returns_head: np.ndarray       # (E,) int64, next slot of the ring
    portfolio_var: np.ndarray      # (E,) float64, EWMA of squared log returns
    domain_return: np.ndarray      # (E, D) float64, last step's return contribution per domain
    domain_performance: np.ndarray  # (E, D) float64, EWMA of domain_return
    allocation: np.ndarray         # (E, D) float64, given from above (meta-controller)
    risk_appetite: np.ndarray      # (E,) float64, given from above


class StepOutputs(NamedTuple):
    """What one step reports for each env, before any autoreset."""

    reward: np.ndarray             # (E,) float64, portfolio reward
    log_return: np.ndarray         # (E,) float64, log(equity after / equity before)
    instrument_reward: np.ndarray  # (E, N) float64, (PnL - costs) of i / equity before
    domain_reward: np.ndarray      # (E, D) float64, sum of instrument_reward in the domain
    executed_weights: np.ndarray   # (E, N) float64, positions / equity right after the fill
    fill_equity: np.ndarray        # (E,) float64, equity at the fill, before its trades
    pnl: np.ndarray                # (E,) float64, money
    costs: np.ndarray              # (E, 6) float64, money by COST_KINDS
    turnover: np.ndarray           # (E,) float64, sum |voluntary trade| / equity at the fill
    equity: np.ndarray             # (E,) float64
    drawdown: np.ndarray           # (E,) float64, 1 - equity / peak
    liquidated: np.ndarray         # (E,) bool, a margin call or ruin forced trades
    terminated: np.ndarray         # (E,) bool, ruin: equity <= 0
    truncated: np.ndarray          # (E,) bool, end of episode or split


def cost_rates(costs: InstrumentCosts) -> CostRates:
    """Per-instrument costs as the fractions the kernels multiply by."""
    return CostRates(
        spread=costs.half_spread_bps * 1e-4, spread_pips=costs.half_spread_pips * costs.pip_size,
        commission=costs.commission_bps * 1e-4, slippage_vol_coef=costs.slippage_vol_coef.copy(),
        impact_coef=costs.impact_coef.copy(), financing_spread=costs.financing_spread_bps * 1e-4,
        initial_margin=costs.initial_margin.copy(), maintenance_margin=costs.maintenance_margin.copy())


def kernel_params(config: EnvConfig, market: MarketData) -> KernelParams:
    """The scalar settings of `config` for `market`'s bar frequency."""
    return KernelParams(
        initial_equity=float(config.initial_equity), max_leverage=float(config.max_leverage),
        daily_vol_factor=float(np.sqrt(market.bars_per_year / TRADING_DAYS_PER_YEAR)),
        bars_per_year=float(market.bars_per_year), drawdown_penalty=float(config.drawdown_penalty),
        turnover_penalty=float(config.turnover_penalty), tail_penalty=float(config.tail_penalty),
        tail_sigmas=float(config.tail_sigmas), ruin_log_return=float(config.ruin_log_return),
        liquidation_fee=float(config.liquidation_fee_bps) * 1e-4,
        portfolio_decay=ewma_decay(config.portfolio_vol_halflife),
        performance_decay=ewma_decay(config.performance_halflife))


def allocate_state(E: int, N: int, D: int, W: int) -> EnvState:
    """Zeroed state; allocation starts equal across domains, risk appetite full."""
    return EnvState(
        bar=np.zeros(E, dtype=np.int64), end_bar=np.zeros(E, dtype=np.int64),
        equity=np.zeros(E), peak_equity=np.zeros(E), positions=np.zeros((E, N)),
        cost_basis=np.zeros((E, N)), ledger_pnl=np.zeros(E),
        ledger_costs=np.zeros((E, len(COST_KINDS))),
        portfolio_returns=np.zeros((E, W)), returns_head=np.zeros(E, dtype=np.int64),
        portfolio_var=np.zeros(E), domain_return=np.zeros((E, D)),
        domain_performance=np.zeros((E, D)), allocation=np.full((E, D), 1.0 / D),
        risk_appetite=np.ones(E))


def allocate_outputs(E: int, N: int, D: int) -> StepOutputs:
    """Zeroed per-step outputs, written in place by every step."""
    return StepOutputs(
        reward=np.zeros(E), log_return=np.zeros(E), instrument_reward=np.zeros((E, N)),
        domain_reward=np.zeros((E, D)), executed_weights=np.zeros((E, N)), fill_equity=np.zeros(E),
        pnl=np.zeros(E),
        costs=np.zeros((E, len(COST_KINDS))), turnover=np.zeros(E), equity=np.zeros(E),
        drawdown=np.zeros(E), liquidated=np.zeros(E, dtype=bool),
        terminated=np.zeros(E, dtype=bool), truncated=np.zeros(E, dtype=bool))
