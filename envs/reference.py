"""The simulator step in plain numpy, vectorized over envs and instruments.

Same inputs, outputs and numbers as `envs.kernels.step` (tests hold the two together to float
rounding); it is the readable reference of the step's arithmetic and the baseline `envs.bench`
measures the kernels against. Episodes are started with `envs.kernels.reset` for both.
"""

from __future__ import annotations

import numpy as np

from envs.state import (
    COMMISSION,
    FINANCING,
    IMPACT,
    LIQUIDATION,
    SLIPPAGE,
    SPREAD,
    CostRates,
    EnvState,
    KernelParams,
    StepOutputs,
)
from envs.tables import MarketTables
from envs.views import N_DOMAIN_STATE, N_INSTRUMENT_STATE


def trade_costs(size: np.ndarray, price: np.ndarray, bar_vol: np.ndarray, adv: np.ndarray,
                costs: CostRates, daily_vol_factor: float) -> tuple[np.ndarray, ...]:
    """Spread, commission, slippage and impact (E, N) of trading `size` money at `price`."""
    daily_vol = bar_vol * daily_vol_factor
    spread = size * (costs.spread + costs.spread_pips / price)
    commission = size * costs.commission
    slippage = size * costs.slippage_vol_coef * daily_vol
    with np.errstate(divide="ignore", invalid="ignore"):
        impact = np.where(adv > 0.0, size * costs.impact_coef * daily_vol * np.sqrt(size / adv), 0.0)
    return spread, commission, slippage, impact


def update_cost_basis(basis: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = basis * (new / old)
    return np.where((old == 0.0) | (old * new < 0.0), new,
                    np.where(np.abs(new) > np.abs(old), basis + (new - old), kept))


def step(targets: np.ndarray, tables: MarketTables, costs: CostRates, params: KernelParams,
         domain_of: np.ndarray, state: EnvState, out: StepOutputs, observation: np.ndarray) -> None:
    """Advance every env one bar toward `targets` (E, N), as `envs.kernels.step` does."""
    t = state.bar                                                    # (E,)
    s = t + 1
    positions = state.positions                                      # (E, N), updated in place
    equity_before = state.equity.copy()
    fill, close_before, close = tables.fill_price[s], tables.close[t], tables.close[s]
    step_costs = np.zeros(out.costs.shape)                           # (E, 6)

    gain = positions * (fill / close_before - 1.0)                   # 1. gap
    positions += gain
    money = gain.copy()                                              # PnL - costs per instrument
    pnl = gain.sum(axis=1)
    fill_equity = equity_before + pnl
    ruined = fill_equity <= 0.0

    tradable = tables.fill_tradable[s]                               # 2. fill
    per_equity = np.where(ruined, 0.0, 1.0 / np.where(ruined, 1.0, fill_equity))[:, None]
    limit = params.max_leverage
    rebalancing = tradable & ~np.isnan(targets)                     # NaN target: hold
    weights = np.where(rebalancing, np.clip(np.nan_to_num(targets), -limit, limit), positions * per_equity)
    margin = np.abs(weights) * costs.initial_margin
    gross_free, gross_held = (np.abs(weights) * rebalancing).sum(1), (np.abs(weights) * ~rebalancing).sum(1)
    margin_free, margin_held = (margin * rebalancing).sum(1), (margin * ~rebalancing).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where((gross_held + gross_free > limit) & (gross_free > 0.0),
                         np.minimum(1.0, np.maximum(limit - gross_held, 0.0) / gross_free), 1.0)
        scale = np.where((margin_held + margin_free > 1.0) & (margin_free > 0.0),
                         np.minimum(scale, np.maximum(1.0 - margin_held, 0.0) / margin_free), scale)
    trading = rebalancing & ~ruined[:, None]
    new = np.where(trading, weights * scale[:, None] * fill_equity[:, None], positions)
    new = np.where(tradable & ruined[:, None], 0.0, new)             # ruin: close at the fill
    size = np.abs(new - positions)
    spread, commission, slippage, impact = trade_costs(size, fill, tables.bar_vol[t],
                                                       tables.adv_notional[t], costs,
                                                       params.daily_vol_factor)
    trade_cost = spread + commission + slippage + impact
    forced = np.where(ruined[:, None], trade_cost + size * params.liquidation_fee, 0.0)
    money -= np.where(ruined[:, None], forced, trade_cost)
    voluntary = ~ruined[:, None]
    for kind, cost in ((SPREAD, spread), (COMMISSION, commission), (SLIPPAGE, slippage), (IMPACT, impact)):
        step_costs[:, kind] = (cost * voluntary).sum(1)
    step_costs[:, LIQUIDATION] = forced.sum(1)
    out.turnover[:] = np.where(ruined, 0.0, size.sum(1) * per_equity[:, 0])
    state.cost_basis[:] = update_cost_basis(state.cost_basis, positions, new)
    positions[:] = new
    out.executed_weights[:] = positions * per_equity

    gross = np.abs(positions).sum(1)                                 # 3. financing
    with np.errstate(divide="ignore", invalid="ignore"):
        levered = np.where((gross > 0.0) & (fill_equity < gross),
                           np.minimum(1.0 - fill_equity / gross, 1.0), 0.0)
    rate = np.maximum(tables.short_rate[t][:, None] + costs.financing_spread, 0.0) / params.bars_per_year
    charge = np.abs(positions) * levered[:, None] * rate
    money -= charge
    step_costs[:, FINANCING] = charge.sum(1)

    gain = positions * (close / fill - 1.0)                          # 4. session
    positions += gain
    money += gain
    pnl += gain.sum(1)
    equity = equity_before + pnl - step_costs.sum(1)

    notional = np.abs(positions)                                     # 5. margin call
    close_tradable = tables.close_tradable[s]
    maintenance = (notional * costs.maintenance_margin).sum(1)
    held = (notional * costs.initial_margin * ~close_tradable).sum(1)
    free = (notional * costs.initial_margin * close_tradable).sum(1)
    called = ~ruined & (equity > 0.0) & (equity < maintenance) & (free > 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(called, np.clip((equity - held) / free, 0.0, 1.0), 1.0)
    called &= keep < 1.0
    cut = called[:, None] & close_tradable & (positions != 0.0)
    size = np.where(cut, (1.0 - keep[:, None]) * notional, 0.0)
    liquidation_costs = sum(trade_costs(size, close, tables.bar_vol[s], tables.adv_notional[s],
                                        costs, params.daily_vol_factor))
    forced = np.where(cut, liquidation_costs + size * params.liquidation_fee, 0.0)
    money -= forced
    step_costs[:, LIQUIDATION] += forced.sum(1)
    positions[:] = np.where(cut, keep[:, None] * positions, positions)
    state.cost_basis[:] = np.where(cut, state.cost_basis * keep[:, None], state.cost_basis)
    equity -= forced.sum(1)
    out.terminated[:] = ruined | (equity <= 0.0)
    out.liquidated[:] = ruined | called

    out.pnl[:], out.costs[:], out.fill_equity[:] = pnl, step_costs, fill_equity
    _book(money, equity_before, params, domain_of, state, out)
    write_observations(tables, params, domain_of, state, observation)


def _book(money: np.ndarray, equity_before: np.ndarray, params: KernelParams,
          domain_of: np.ndarray, state: EnvState, out: StepOutputs) -> None:
    """Ledger, equity derived from it, per-level rewards and the state they feed."""
    state.ledger_pnl[:] += out.pnl
    state.ledger_costs[:] += out.costs
    equity = params.initial_equity + state.ledger_pnl - state.ledger_costs.sum(1)
    peak = np.maximum(state.peak_equity, equity)
    drawdown_before = 1.0 - equity_before / state.peak_equity
    drawdown = 1.0 - equity / peak
    with np.errstate(divide="ignore", invalid="ignore"):
        log_return = np.where(equity > 0.0, np.log(equity / equity_before), params.ruin_log_return)
    log_return = np.maximum(log_return, params.ruin_log_return)
    tail_loss = np.maximum(-log_return - params.tail_sigmas * np.sqrt(state.portfolio_var), 0.0)
    out.reward[:] = (log_return - params.drawdown_penalty * np.maximum(drawdown - drawdown_before, 0.0)
                     - params.turnover_penalty * out.turnover - params.tail_penalty * tail_loss)
    out.log_return[:], out.equity[:], out.drawdown[:] = log_return, equity, drawdown
    state.equity[:], state.peak_equity[:] = equity, peak
    decay = params.portfolio_decay
    state.portfolio_var[:] = decay * state.portfolio_var + (1.0 - decay) * log_return**2
    rows = np.arange(len(equity))
    state.portfolio_returns[rows, state.returns_head] = log_return
    state.returns_head[:] = (state.returns_head + 1) % state.portfolio_returns.shape[1]

    out.instrument_reward[:] = money / equity_before[:, None]
    out.domain_reward[:] = 0.0
    np.add.at(out.domain_reward.T, domain_of, out.instrument_reward.T)
    decay = params.performance_decay
    state.domain_return[:] = out.domain_reward
    state.domain_performance[:] = decay * state.domain_performance + (1.0 - decay) * out.domain_reward
    state.bar[:] += 1
    out.truncated[:] = state.bar >= state.end_bar


def write_observations(tables: MarketTables, params: KernelParams, domain_of: np.ndarray,
                       state: EnvState, observation: np.ndarray) -> None:
    """Every env's observation row at its current bar (layout: `envs.views`)."""
    E, N = state.positions.shape
    F = tables.instrument_features.shape[2]
    D, W = state.allocation.shape[1], state.portfolio_returns.shape[1]
    t = state.bar
    equity = state.equity
    per_equity = np.where(equity > 0.0, 1.0 / np.where(equity > 0.0, equity, 1.0), 0.0)[:, None]
    weights = state.positions * per_equity
    instruments = observation[:, : N * (F + N_INSTRUMENT_STATE)].reshape(E, N, F + N_INSTRUMENT_STATE)
    instruments[:, :, :F] = tables.instrument_features[t]
    instruments[:, :, F] = weights
    instruments[:, :, F + 1] = (state.positions - state.cost_basis) * per_equity
    instruments[:, :, F + 2] = state.allocation[:, domain_of]
    instruments[:, :, F + 3] = state.risk_appetite[:, None]
    base = N * (F + N_INSTRUMENT_STATE)
    domains = observation[:, base: base + D * N_DOMAIN_STATE].reshape(E, D, N_DOMAIN_STATE)
    members = domain_of[None, :] == np.arange(D)[:, None]                       # (D, N)
    domains[:, :, 0] = np.abs(weights) @ members.T
    domains[:, :, 1] = weights @ members.T
    domains[:, :, 2] = state.domain_return
    domains[:, :, 3] = state.domain_performance
    base += D * N_DOMAIN_STATE
    order = (state.returns_head[:, None] + np.arange(W)[None, :]) % W           # oldest first
    observation[:, base: base + W] = np.take_along_axis(state.portfolio_returns, order, axis=1)
    base += W
    observation[:, base] = np.sqrt(state.portfolio_var)
    observation[:, base + 1] = 1.0 - equity / state.peak_equity
    observation[:, base + 2] = np.abs(weights).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        observation[:, base + 3] = np.where(equity > 0.0, np.log(equity / params.initial_equity),
                                            params.ruin_log_return)
    observation[:, base + 4:] = tables.global_observation[t]
