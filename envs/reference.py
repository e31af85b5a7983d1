"""The simulator step in plain numpy, vectorized over envs and instruments.

Same inputs, outputs and numbers as `envs.kernels.step` (tests hold the two together to float
rounding); it is the readable reference of the step's arithmetic and the baseline `envs.bench`
measures the kernels against. Episodes are started with `envs.kernels.reset` for both.

The step is the kernel's, stage for stage and under the same names, so the two modules read
side by side: `_mark_to_fill`, `_fill` (`_rebalance`, or `_liquidate` on ruin, then
`_financing`), `_mark_to_close` (`_margin_call_keep`, then `_liquidate`), `_book` and
`write_observations`, with the helpers `trade_costs` and `update_cost_basis`. Where a kernel
stage loops over envs and instruments, its counterpart here computes all of them at once, and a
helper that the kernel calls for one env `e` takes here a boolean mask `envs` (E,) of the envs
it acts on. The stages hand money on through the same `StepOutputs` fields: `instrument_reward`
holds each instrument's PnL minus costs in money until `_book` divides it by the equity before
the step; `pnl`, `costs`, `fill_equity`, `turnover`, `liquidated` and `terminated` are filled in
as in the kernel. The model (gap, fill, costs, financing, session, margin call, ruin) is
described in `envs.kernels`.
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
    """Average-cost basis after positions move from `old` to `new` notional at the fill."""
    with np.errstate(divide="ignore", invalid="ignore"):
        kept = basis * (new / old)
    return np.where((old == 0.0) | (old * new < 0.0), new,
                    np.where(np.abs(new) > np.abs(old), basis + (new - old), kept))


def _liquidate(envs: np.ndarray, keep: np.ndarray, prices: np.ndarray, tradable: np.ndarray,
               bar_vol: np.ndarray, adv: np.ndarray, costs: CostRates, params: KernelParams,
               state: EnvState, out: StepOutputs) -> np.ndarray:
    """Scale the positions of `envs` tradable at `tradable` (E, N) by `keep` (E,) in [0, 1], trading
    at `prices` with volatility `bar_vol` and volume `adv` (E, N); returns the forced costs (E,)."""
    positions = state.positions
    cut = envs[:, None] & tradable & (positions != 0.0)
    size = np.where(cut, (1.0 - keep[:, None]) * np.abs(positions), 0.0)
    spread, commission, slippage, impact = trade_costs(size, prices, bar_vol, adv, costs,
                                                       params.daily_vol_factor)
    cost = np.where(cut, spread + commission + slippage + impact + size * params.liquidation_fee, 0.0)
    out.instrument_reward[:] -= cost
    positions[:] = np.where(cut, keep[:, None] * positions, positions)
    state.cost_basis[:] = np.where(cut, state.cost_basis * keep[:, None], state.cost_basis)
    return cost.sum(1)


def _rebalance(envs: np.ndarray, targets: np.ndarray, t: np.ndarray, equity_fill: np.ndarray,
               tables: MarketTables, costs: CostRates, params: KernelParams, state: EnvState,
               out: StepOutputs) -> None:
    """Trade `envs` to their capped targets at fill[t + 1], booking costs and turnover in `out`."""
    s = t + 1
    limit = params.max_leverage
    positions = state.positions
    free = envs[:, None] & tables.fill_tradable[s] & ~np.isnan(targets)   # NaN target: hold
    with np.errstate(divide="ignore", invalid="ignore"):       # equity_fill <= 0 outside `envs`
        weights = np.where(free, np.clip(targets, -limit, limit), positions / equity_fill[:, None])
        gross = np.abs(weights)
        margin = gross * costs.initial_margin
        gross_free, gross_held = (gross * free).sum(1), (gross * ~free).sum(1)
        margin_free, margin_held = (margin * free).sum(1), (margin * ~free).sum(1)
        scale = np.where((gross_held + gross_free > limit) & (gross_free > 0.0),
                         np.minimum(1.0, np.maximum(limit - gross_held, 0.0) / gross_free), 1.0)
        scale = np.where((margin_held + margin_free > 1.0) & (margin_free > 0.0),
                         np.minimum(scale, np.maximum(1.0 - margin_held, 0.0) / margin_free), scale)
    new = np.where(free, weights * scale[:, None] * equity_fill[:, None], positions)
    size = np.abs(new - positions)                             # 0 where nothing trades
    spread, commission, slippage, impact = trade_costs(
        size, tables.fill_price[s], tables.bar_vol[t], tables.adv_notional[t], costs,
        params.daily_vol_factor)
    out.instrument_reward[:] -= spread + commission + slippage + impact
    for kind, cost in ((SPREAD, spread), (COMMISSION, commission), (SLIPPAGE, slippage), (IMPACT, impact)):
        out.costs[:, kind] += cost.sum(1)
    np.divide(size.sum(1), equity_fill, out=out.turnover, where=envs)
    state.cost_basis[:] = np.where(free, update_cost_basis(state.cost_basis, positions, new), state.cost_basis)
    positions[:] = new


def _financing(equity_fill: np.ndarray, short_rate: np.ndarray, costs: CostRates,
               params: KernelParams, state: EnvState, out: StepOutputs) -> np.ndarray:
    """One bar of financing on the leveraged part of each env's positions; returns money (E,)."""
    notional = np.abs(state.positions)
    gross = notional.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        levered = np.where((gross > 0.0) & (equity_fill < gross), np.minimum(1.0 - equity_fill / gross, 1.0), 0.0)
    rate = np.maximum(short_rate[:, None] + costs.financing_spread, 0.0) / params.bars_per_year
    charge = notional * levered[:, None] * rate
    out.instrument_reward[:] -= charge
    return charge.sum(1)


def _margin_call_keep(equity: np.ndarray, tradable: np.ndarray, costs: CostRates,
                      state: EnvState) -> np.ndarray:
    """1 where an env meets its maintenance requirement at close[t + 1]; else the fraction of its
    positions tradable there (`tradable` (E, N)) to keep so that the initial requirement equals equity."""
    notional = np.abs(state.positions)
    maintenance = (notional * costs.maintenance_margin).sum(1)
    initial = notional * costs.initial_margin
    held, free = (initial * ~tradable).sum(1), (initial * tradable).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.clip((equity - held) / free, 0.0, 1.0)
    return np.where((equity >= maintenance) | (free == 0.0), 1.0, keep)


def _mark_to_fill(tables: MarketTables, state: EnvState, out: StepOutputs) -> None:
    """Phase 1: old positions ride close[t] -> fill[t+1]; clears this step's outputs."""
    t = state.bar
    gain = state.positions * (tables.fill_price[t + 1] / tables.close[t] - 1.0)
    state.positions[:] += gain
    out.instrument_reward[:] = gain                            # PnL - costs of i in money, until _book
    out.costs[:] = 0.0
    out.pnl[:] = gain.sum(1)
    out.fill_equity[:] = state.equity + out.pnl
    out.turnover[:] = 0.0
    out.liquidated[:] = False


def _fill(targets: np.ndarray, tables: MarketTables, costs: CostRates, params: KernelParams,
          state: EnvState, out: StepOutputs) -> None:
    """Phase 2: trade to the targets at fill[t+1] (or close out on ruin), then financing."""
    t = state.bar
    s = t + 1
    equity_fill = out.fill_equity
    ruined = equity_fill <= 0.0
    if ruined.any():
        out.costs[:, LIQUIDATION] += _liquidate(
            ruined, np.zeros(len(t)), tables.fill_price[s], tables.fill_tradable[s], tables.bar_vol[t],
            tables.adv_notional[t], costs, params, state, out)
        out.liquidated[:] |= ruined
    _rebalance(~ruined, targets, t, equity_fill, tables, costs, params, state, out)
    out.executed_weights[:] = 0.0
    np.divide(state.positions, equity_fill[:, None], out=out.executed_weights, where=~ruined[:, None])
    out.costs[:, FINANCING] = _financing(equity_fill, tables.short_rate[t], costs, params, state, out)


def _mark_to_close(tables: MarketTables, costs: CostRates, params: KernelParams,
                   state: EnvState, out: StepOutputs) -> None:
    """Phase 3: new positions ride fill[t+1] -> close[t+1]; margin call; ruin."""
    s = state.bar + 1
    close = tables.close[s]
    gain = state.positions * (close / tables.fill_price[s] - 1.0)
    state.positions[:] += gain
    out.instrument_reward[:] += gain
    out.pnl[:] += gain.sum(1)
    equity = state.equity + out.pnl - out.costs.sum(1)
    ruined_at_fill = out.fill_equity <= 0.0
    tradable = tables.close_tradable[s]
    keep = np.where(~ruined_at_fill & (equity > 0.0), _margin_call_keep(equity, tradable, costs, state), 1.0)
    called = keep < 1.0
    if called.any():
        forced = _liquidate(called, keep, close, tradable, tables.bar_vol[s], tables.adv_notional[s],
                            costs, params, state, out)
        out.costs[:, LIQUIDATION] += forced
        equity -= forced
        out.liquidated[:] |= called
    out.terminated[:] = ruined_at_fill | (equity <= 0.0)


def _book(params: KernelParams, domain_of: np.ndarray, state: EnvState, out: StepOutputs) -> None:
    """Phase 4: the ledger, equity from it, per-level rewards and the state they feed; the clock advances."""
    state.ledger_pnl[:] += out.pnl
    state.ledger_costs[:] += out.costs
    equity_before = state.equity.copy()
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
    state.portfolio_returns[np.arange(len(equity)), state.returns_head] = log_return
    state.returns_head[:] = (state.returns_head + 1) % state.portfolio_returns.shape[1]

    out.instrument_reward[:] /= equity_before[:, None]
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


def step(targets: np.ndarray, tables: MarketTables, costs: CostRates, params: KernelParams,
         domain_of: np.ndarray, state: EnvState, out: StepOutputs, observation: np.ndarray) -> None:
    """Advance every env one bar toward `targets` (E, N) and write its next observation, as
    `envs.kernels.step` does (a NaN target holds that instrument's position)."""
    _mark_to_fill(tables, state, out)
    _fill(targets, tables, costs, params, state, out)
    _mark_to_close(tables, costs, params, state, out)
    _book(params, domain_of, state, out)
    write_observations(tables, params, domain_of, state, observation)
