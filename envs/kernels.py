"""Numba kernels that advance E market environments over N instruments in one call.

One step of one env, deciding at bar t with data <= close[t], marks to close[s], s = t + 1:

  1. gap       old positions ride close[t] -> fill[s] (fill = open[s]; under `close`, close[t])
  2. fill      targets are clipped to +-max_leverage, then scaled down together so that gross
               leverage <= max_leverage and the initial margin sum |w_i| m_i <= 1; the position
               becomes w_i * (equity at the fill). An instrument whose fill bar is FORWARD_FILLED
               is not traded (its position is held). Each trade of |x| money at price p pays
                   spread      |x| (half_spread_bps 1e-4 + half_spread_pips pip_size / p)
                   commission  |x| commission_bps 1e-4
                   slippage    |x| slippage_vol_coef sigma_d
                   impact      |x| impact_coef sigma_d sqrt(|x| / ADV)   (if ADV is known)
               sigma_d is the daily volatility and ADV the average daily traded notional, both
               EWMAs known at t.
  3. financing per bar on the leveraged part of the post-fill positions:
                   sum_i |n_i| max(1 - equity_fill / gross, 0) max(short_rate_t + spread_i, 0)
                   / bars_per_year
               (unlevered positions and cash pay and earn nothing)
  4. session   new positions ride fill[s] -> close[s]
  5. margin    equity below the maintenance requirement sum |n_i| mm_i at close[s]: tradable
               positions are scaled down together until the initial requirement equals equity
               (measured before the forced trade's own costs, which, with the liquidation fee,
               are booked as `liquidation`)
  6. ruin      equity <= 0 at the fill (all positions are then closed there, as a liquidation)
               or at the close terminates the episode

The ledger is the one source of equity: equity = initial + sum PnL - sum costs, every step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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
from envs.views import N_DOMAIN_STATE, N_INSTRUMENT_STATE, N_PORTFOLIO_STATE

# Each phase below loops over all envs itself and is called once per step: handing the state
# tuples to a function once per env costs more than the step's arithmetic. Helpers used inside
# those loops are inlined for the same reason.


@njit(cache=True, error_model="numpy", inline="always")
def trade_costs(i: int, size: float, price: float, bar_vol: float, adv: float,
                costs: CostRates, daily_vol_factor: float) -> tuple[float, float, float, float]:
    """Spread, commission, slippage and impact, in money, of trading `size` money of i."""
    daily_vol = bar_vol * daily_vol_factor
    spread = size * (costs.spread[i] + costs.spread_pips[i] / price)
    commission = size * costs.commission[i]
    slippage = size * costs.slippage_vol_coef[i] * daily_vol
    impact = size * costs.impact_coef[i] * daily_vol * np.sqrt(size / adv) if adv > 0.0 else 0.0
    return spread, commission, slippage, impact


@njit(cache=True, error_model="numpy")
def update_cost_basis(basis: float, old: float, new: float) -> float:
    """Average-cost basis after a position moves from `old` to `new` notional at the fill."""
    if old == 0.0 or old * new < 0.0:
        return new
    if abs(new) > abs(old):
        return basis + (new - old)
    return basis * (new / old)


@njit(cache=True, error_model="numpy", inline="always")
def _liquidate(e: int, keep: float, prices: np.ndarray, row: int, cost_row: int,
               tradable: np.ndarray, tables: MarketTables, costs: CostRates,
               params: KernelParams, state: EnvState, out: StepOutputs) -> float:
    """Scale env e's positions tradable at `tradable[row]` by `keep` in [0, 1], trading at
    `prices[row]` with volatility and volume known at `cost_row`; returns the forced costs."""
    total = 0.0
    for i in range(state.positions.shape[1]):
        position = state.positions[e, i]
        if not tradable[row, i] or position == 0.0:
            continue
        size = (1.0 - keep) * abs(position)
        spread, commission, slippage, impact = trade_costs(
            i, size, prices[row, i], tables.bar_vol[cost_row, i], tables.adv_notional[cost_row, i],
            costs, params.daily_vol_factor)
        cost = spread + commission + slippage + impact + size * params.liquidation_fee
        out.instrument_reward[e, i] -= cost
        total += cost
        state.positions[e, i] = keep * position
        state.cost_basis[e, i] *= keep
    return total


@njit(cache=True, error_model="numpy", inline="always")
def _rebalance(e: int, targets: np.ndarray, t: int, equity_fill: float, tables: MarketTables,
               costs: CostRates, params: KernelParams, state: EnvState, out: StepOutputs) -> None:
    """Trade env e to its capped targets at fill[t + 1], booking costs and turnover in `out`
    (`out.executed_weights[e]` holds the capped target weights meanwhile)."""
    s = t + 1
    N = state.positions.shape[1]
    limit = params.max_leverage
    weights = out.executed_weights
    gross_held = gross_free = margin_held = margin_free = 0.0
    for i in range(N):
        if tables.fill_tradable[s, i] and not np.isnan(targets[e, i]):   # NaN target: hold
            w = min(max(float(targets[e, i]), -limit), limit)
            gross_free += abs(w)
            margin_free += abs(w) * costs.initial_margin[i]
        else:
            w = state.positions[e, i] / equity_fill
            gross_held += abs(w)
            margin_held += abs(w) * costs.initial_margin[i]
        weights[e, i] = w
    scale = 1.0
    if gross_held + gross_free > limit and gross_free > 0.0:
        scale = min(scale, max(limit - gross_held, 0.0) / gross_free)
    if margin_held + margin_free > 1.0 and margin_free > 0.0:
        scale = min(scale, max(1.0 - margin_held, 0.0) / margin_free)
    traded = 0.0
    for i in range(N):
        if not tables.fill_tradable[s, i] or np.isnan(targets[e, i]):
            continue
        position = state.positions[e, i]
        new = weights[e, i] * scale * equity_fill
        size = abs(new - position)
        if size == 0.0:
            continue
        spread, commission, slippage, impact = trade_costs(
            i, size, tables.fill_price[s, i], tables.bar_vol[t, i], tables.adv_notional[t, i],
            costs, params.daily_vol_factor)
        out.instrument_reward[e, i] -= spread + commission + slippage + impact
        out.costs[e, SPREAD] += spread
        out.costs[e, COMMISSION] += commission
        out.costs[e, SLIPPAGE] += slippage
        out.costs[e, IMPACT] += impact
        traded += size
        state.cost_basis[e, i] = update_cost_basis(state.cost_basis[e, i], position, new)
        state.positions[e, i] = new
    out.turnover[e] = traded / equity_fill


@njit(cache=True, error_model="numpy", inline="always")
def _financing(e: int, equity_fill: float, short_rate: float, costs: CostRates,
               params: KernelParams, state: EnvState, out: StepOutputs) -> float:
    """One bar of financing on the leveraged part of env e's positions; returns money."""
    N = state.positions.shape[1]
    gross = 0.0
    for i in range(N):
        gross += abs(state.positions[e, i])
    if gross == 0.0 or equity_fill >= gross:
        return 0.0
    levered = min(1.0 - equity_fill / gross, 1.0)
    total = 0.0
    for i in range(N):
        rate = max(short_rate + costs.financing_spread[i], 0.0) / params.bars_per_year
        charge = abs(state.positions[e, i]) * levered * rate
        out.instrument_reward[e, i] -= charge
        total += charge
    return total


@njit(cache=True, error_model="numpy", inline="always")
def _margin_call_keep(e: int, equity: float, s: int, tables: MarketTables, costs: CostRates,
                      state: EnvState) -> float:
    """1 if env e meets its maintenance requirement at close[s]; else the fraction of its
    positions tradable there to keep so that the initial requirement equals equity."""
    maintenance = held = free = 0.0
    for i in range(state.positions.shape[1]):
        notional = abs(state.positions[e, i])
        maintenance += notional * costs.maintenance_margin[i]
        if tables.close_tradable[s, i]:
            free += notional * costs.initial_margin[i]
        else:
            held += notional * costs.initial_margin[i]
    if equity >= maintenance or free == 0.0:
        return 1.0
    return min(max((equity - held) / free, 0.0), 1.0)


@njit(cache=True, error_model="numpy")
def _mark_to_fill(tables: MarketTables, state: EnvState, out: StepOutputs) -> None:
    """Phase 1: old positions ride close[t] -> fill[t+1]; clears this step's outputs."""
    E, N = state.positions.shape
    for e in range(E):
        t = state.bar[e]
        s = t + 1
        pnl = 0.0
        for i in range(N):
            gain = state.positions[e, i] * (tables.fill_price[s, i] / tables.close[t, i] - 1.0)
            state.positions[e, i] += gain
            out.instrument_reward[e, i] = gain       # PnL - costs of i in money, until _book
            pnl += gain
        for k in range(out.costs.shape[1]):
            out.costs[e, k] = 0.0
        out.pnl[e] = pnl
        out.fill_equity[e] = state.equity[e] + pnl
        out.turnover[e] = 0.0
        out.liquidated[e] = False


@njit(cache=True, error_model="numpy")
def _fill(targets: np.ndarray, tables: MarketTables, costs: CostRates, params: KernelParams,
          state: EnvState, out: StepOutputs) -> None:
    """Phase 2: trade to the targets at fill[t+1] (or close out on ruin), then financing."""
    E, N = state.positions.shape
    for e in range(E):
        t = state.bar[e]
        equity_fill = out.fill_equity[e]
        if equity_fill <= 0.0:
            out.costs[e, LIQUIDATION] += _liquidate(
                e, 0.0, tables.fill_price, t + 1, t, tables.fill_tradable, tables, costs, params,
                state, out)
            out.liquidated[e] = True
        else:
            _rebalance(e, targets, t, equity_fill, tables, costs, params, state, out)
        for i in range(N):
            out.executed_weights[e, i] = state.positions[e, i] / equity_fill if equity_fill > 0.0 else 0.0
        out.costs[e, FINANCING] = _financing(e, equity_fill, tables.short_rate[t], costs, params,
                                             state, out)


@njit(cache=True, error_model="numpy")
def _mark_to_close(tables: MarketTables, costs: CostRates, params: KernelParams,
                   state: EnvState, out: StepOutputs) -> None:
    """Phase 3: new positions ride fill[t+1] -> close[t+1]; margin call; ruin."""
    E, N = state.positions.shape
    for e in range(E):
        s = state.bar[e] + 1
        pnl = 0.0
        for i in range(N):
            gain = state.positions[e, i] * (tables.close[s, i] / tables.fill_price[s, i] - 1.0)
            state.positions[e, i] += gain
            out.instrument_reward[e, i] += gain
            pnl += gain
        out.pnl[e] += pnl
        cost = 0.0
        for k in range(out.costs.shape[1]):
            cost += out.costs[e, k]
        equity = state.equity[e] + out.pnl[e] - cost
        ruined_at_fill = out.fill_equity[e] <= 0.0
        if not ruined_at_fill and equity > 0.0:
            keep = _margin_call_keep(e, equity, s, tables, costs, state)
            if keep < 1.0:
                forced = _liquidate(e, keep, tables.close, s, s, tables.close_tradable, tables,
                                    costs, params, state, out)
                out.costs[e, LIQUIDATION] += forced
                equity -= forced
                out.liquidated[e] = True
        out.terminated[e] = ruined_at_fill or equity <= 0.0


@njit(cache=True, error_model="numpy")
def _book(params: KernelParams, domain_of: np.ndarray, state: EnvState, out: StepOutputs) -> None:
    """Phase 4: the ledger, equity derived from it, per-level rewards, and the state they feed
    (drawdown, return window, EWMAs); then the clock advances."""
    E, N = state.positions.shape
    D = out.domain_reward.shape[1]
    n_kinds = out.costs.shape[1]
    for e in range(E):
        state.ledger_pnl[e] += out.pnl[e]
        cumulative_costs = 0.0
        for k in range(n_kinds):
            state.ledger_costs[e, k] += out.costs[e, k]
            cumulative_costs += state.ledger_costs[e, k]
        equity_before = state.equity[e]
        equity = params.initial_equity + state.ledger_pnl[e] - cumulative_costs
        peak_before = state.peak_equity[e]
        peak = max(peak_before, equity)
        drawdown_before = 1.0 - equity_before / peak_before
        drawdown = 1.0 - equity / peak
        log_return = np.log(equity / equity_before) if equity > 0.0 else params.ruin_log_return
        log_return = max(log_return, params.ruin_log_return)
        tail_loss = max(-log_return - params.tail_sigmas * np.sqrt(state.portfolio_var[e]), 0.0)
        out.reward[e] = (log_return
                         - params.drawdown_penalty * max(drawdown - drawdown_before, 0.0)
                         - params.turnover_penalty * out.turnover[e]
                         - params.tail_penalty * tail_loss)
        out.log_return[e] = log_return
        out.equity[e] = equity
        out.drawdown[e] = drawdown
        state.equity[e] = equity
        state.peak_equity[e] = peak
        decay = params.portfolio_decay
        state.portfolio_var[e] = decay * state.portfolio_var[e] + (1.0 - decay) * log_return**2
        head = state.returns_head[e]
        state.portfolio_returns[e, head] = log_return
        state.returns_head[e] = head + 1 if head + 1 < state.portfolio_returns.shape[1] else 0

        for d in range(D):
            out.domain_reward[e, d] = 0.0
        for i in range(N):
            out.instrument_reward[e, i] /= equity_before
            out.domain_reward[e, domain_of[i]] += out.instrument_reward[e, i]
        decay = params.performance_decay
        for d in range(D):
            state.domain_return[e, d] = out.domain_reward[e, d]
            state.domain_performance[e, d] = (decay * state.domain_performance[e, d]
                                              + (1.0 - decay) * out.domain_reward[e, d])
        state.bar[e] += 1
        out.truncated[e] = state.bar[e] >= state.end_bar[e]


@njit(cache=True, error_model="numpy")
def write_observations(envs, tables: MarketTables, params: KernelParams, domain_of: np.ndarray,
                       state: EnvState, observation: np.ndarray) -> None:
    """Observation rows of `envs` (a range or an index array) at their current bars
    (layout: `envs.views`)."""
    N, F = tables.instrument_features.shape[1:]
    D = state.allocation.shape[1]
    W = state.portfolio_returns.shape[1]
    G = tables.global_observation.shape[1]
    per_instrument = F + N_INSTRUMENT_STATE
    domain_base = N * per_instrument
    returns_base = domain_base + D * N_DOMAIN_STATE
    portfolio_base = returns_base + W
    global_base = portfolio_base + N_PORTFOLIO_STATE
    for e in envs:
        t = state.bar[e]
        equity = state.equity[e]
        per_equity = 1.0 / equity if equity > 0.0 else 0.0
        for d in range(D):
            observation[e, domain_base + d * N_DOMAIN_STATE] = 0.0
            observation[e, domain_base + d * N_DOMAIN_STATE + 1] = 0.0
        gross = 0.0
        for i in range(N):
            base = i * per_instrument
            for f in range(F):
                observation[e, base + f] = tables.instrument_features[t, i, f]
            weight = state.positions[e, i] * per_equity
            d = domain_of[i]
            observation[e, base + F] = weight
            observation[e, base + F + 1] = (state.positions[e, i] - state.cost_basis[e, i]) * per_equity
            observation[e, base + F + 2] = state.allocation[e, d]
            observation[e, base + F + 3] = state.risk_appetite[e]
            observation[e, domain_base + d * N_DOMAIN_STATE] += abs(weight)
            observation[e, domain_base + d * N_DOMAIN_STATE + 1] += weight
            gross += abs(weight)
        for d in range(D):
            observation[e, domain_base + d * N_DOMAIN_STATE + 2] = state.domain_return[e, d]
            observation[e, domain_base + d * N_DOMAIN_STATE + 3] = state.domain_performance[e, d]
        head = state.returns_head[e]
        for k in range(W):                                       # oldest first
            slot = head + k if head + k < W else head + k - W
            observation[e, returns_base + k] = state.portfolio_returns[e, slot]
        observation[e, portfolio_base] = np.sqrt(state.portfolio_var[e])
        observation[e, portfolio_base + 1] = 1.0 - equity / state.peak_equity[e]
        observation[e, portfolio_base + 2] = gross
        observation[e, portfolio_base + 3] = (np.log(equity / params.initial_equity) if equity > 0.0
                                              else params.ruin_log_return)
        for g in range(G):
            observation[e, global_base + g] = tables.global_observation[t, g]


@njit(cache=True, error_model="numpy")
def first_invalid_env(targets: np.ndarray, state: EnvState) -> int:
    """The first env with an infinite target or whose episode is over, else -1 (checked apart
    from `step`, whose loops run faster without a raise inside). A NaN target means hold."""
    for e in range(targets.shape[0]):
        if state.bar[e] >= state.end_bar[e]:
            return e
        for i in range(targets.shape[1]):
            if np.isinf(targets[e, i]):
                return e
    return -1


@njit(cache=True, error_model="numpy")
def step(targets: np.ndarray, tables: MarketTables, costs: CostRates, params: KernelParams,
         domain_of: np.ndarray, state: EnvState, out: StepOutputs, observation: np.ndarray) -> None:
    """Advance every env one bar toward `targets` (E, N) and write its next observation.

    A NaN target holds that instrument's position. Call `first_invalid_env` first: this kernel
    trusts that no target is infinite and that no episode is over.
    """
    _mark_to_fill(tables, state, out)
    _fill(targets, tables, costs, params, state, out)
    _mark_to_close(tables, costs, params, state, out)
    _book(params, domain_of, state, out)
    write_observations(range(targets.shape[0]), tables, params, domain_of, state, observation)


@njit(cache=True, error_model="numpy")
def reset(envs: np.ndarray, start_bars: np.ndarray, end_bars: np.ndarray, tables: MarketTables,
          params: KernelParams, domain_of: np.ndarray, state: EnvState,
          observation: np.ndarray) -> None:
    """Start a new episode in each env of `envs` (flat, all cash) and write its observation.

    The portfolio variance starts at the mean squared bar volatility of the instruments at the
    start bar; allocation and risk appetite, given from above, are left as they are.
    """
    N = state.positions.shape[1]
    for k in range(envs.shape[0]):
        e = envs[k]
        start = start_bars[k]
        state.bar[e] = start
        state.end_bar[e] = end_bars[k]
        state.equity[e] = params.initial_equity
        state.peak_equity[e] = params.initial_equity
        state.positions[e, :] = 0.0
        state.cost_basis[e, :] = 0.0
        state.ledger_pnl[e] = 0.0
        state.ledger_costs[e, :] = 0.0
        state.portfolio_returns[e, :] = 0.0
        state.returns_head[e] = 0
        variance = 0.0
        for i in range(N):
            variance += tables.bar_vol[start, i] ** 2
        state.portfolio_var[e] = variance / N
        state.domain_return[e, :] = 0.0
        state.domain_performance[e, :] = 0.0
    write_observations(envs, tables, params, domain_of, state, observation)
