"""Monte Carlo and stress scenarios for any policy: the stationary-bootstrap distribution of its
Sharpe ratio, drawdown and VaR; forced crash-regime paths on the synthetic market, each against
its unforced twin (same draws, the chain left free); historical crisis windows of a real
universe; and VaR backtests of realised returns against a rolling, causal VaR forecast.

A window's metrics cover the bars whose returns fall inside it (a bar's return is realised over
the bar that ends at its timestamp); its drawdown is measured from the equity at the window's
start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.synthetic import RegimeWindow, SyntheticConfig, generate
from eval import metrics
from eval.backtest import BacktestResult, Policy, run_policy
from eval.bootstrap import stationary_bootstrap_metrics
from risk import var
from risk.backtests import VaRBacktest, backtest_var
from risk.limits import RiskLimits

# Crisis windows of US equities (inclusive dates): from the month of Lehman Brothers' failure to
# the March 2009 trough, and the COVID-19 crash from the February 2020 peak through its rebound.
CRISIS_WINDOWS: dict[str, tuple[str, str]] = {
    "gfc_2008": ("2008-09-01", "2009-03-31"),
    "covid_2020": ("2020-02-19", "2020-04-30"),
}

VAR_ESTIMATORS: dict[str, Callable[[np.ndarray, float], var.TailRisk]] = {
    "historical": var.historical_var, "normal": var.normal_var,
    "cornish_fisher": var.cornish_fisher_var, "student_t": var.student_t_var,
}


# ---------------------------------------------------------------------- Monte Carlo
def bootstrap_quantiles(series: list[np.ndarray], n_resamples: int = 10_000,
                        seed: int | np.random.Generator = 0,
                        quantiles: tuple[float, ...] = (0.05, 0.5, 0.95),
                        periods_per_year: float = metrics.TRADING_DAYS) -> pd.DataFrame:
    """Stationary-bootstrap distribution of Sharpe ratio, maximum drawdown and VaR(95 %) of one
    strategy, `n_resamples` resamples of each of its return series (one per seed), pooled.
    Rows: metrics; columns: the mean observed value over the series, the pooled `quantiles`,
    and (Sharpe only) the share of resamples below zero."""
    rng = np.random.default_rng(seed)
    observed, pooled = [], []
    for returns, child in zip(series, rng.spawn(len(series))):
        r = np.asarray(returns, dtype=np.float64)
        draws = stationary_bootstrap_metrics(r, n_resamples, seed=child, periods_per_year=periods_per_year)
        observed.append([metrics.sharpe_ratio(r, 0.0, periods_per_year)[0], metrics.max_drawdown(r)[0],
                         metrics.value_at_risk(r)[0]])
        pooled.append(np.column_stack([draws.sharpe, draws.max_drawdown, draws.value_at_risk]))
    samples = np.concatenate(pooled)                                              # (R * S, 3)
    table = pd.DataFrame(np.nanquantile(samples, quantiles, axis=0).T,
                         index=["sharpe", "max_drawdown", "var"], columns=[f"q{q:g}" for q in quantiles])
    table.insert(0, "observed", np.mean(observed, axis=0))
    table["p_below_zero"] = [np.mean(samples[:, 0] < 0), np.nan, np.nan]
    return table


# ---------------------------------------------------------------------- windows
def window_metrics(returns: np.ndarray, periods_per_year: float = metrics.TRADING_DAYS) -> dict[str, float]:
    """Return over the window (compounded), its maximum drawdown, annualised volatility, worst
    bar and number of bars."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        raise ValueError(f"a window needs at least 2 bars of returns, got {r.size}")
    return {"window_return": float(np.prod(1.0 + r) - 1.0), "max_drawdown": float(metrics.max_drawdown(r)[0]),
            "ann_vol": float(metrics.annual_volatility(r, periods_per_year)[0]),
            "worst_bar": float(r.min()), "n_bars": float(r.size)}


def returns_between(result: BacktestResult, start: pd.Timestamp, stop: pd.Timestamp) -> np.ndarray:
    """The result's returns of bars stamped in [start, stop]."""
    inside = (result.timestamps >= start) & (result.timestamps <= stop)
    return result.returns[inside]


# ---------------------------------------------------------------------- crash paths
@dataclasses.dataclass(frozen=True)
class CrashScenario:
    """One synthetic path with a forced crash window, and its unforced twin (same seed)."""

    seed: int
    window: RegimeWindow
    crash: MarketData
    calm: MarketData


def crash_scenarios(base: SyntheticConfig, n_paths: int, rng: np.random.Generator, years: float = 2.0,
                    start: int = 300, length: int = 60, regime: str = "volatile") -> list[CrashScenario]:
    """`n_paths` markets of `base`'s universe, `years` long, each with bars [start, start +
    length) forced into `regime`; path seeds are drawn from `rng`."""
    window = RegimeWindow(start, start + length, regime)
    scenarios = []
    for seed in rng.integers(0, 2**31 - 1, size=n_paths):
        calm = dataclasses.replace(base, years=years, seed=int(seed), forced_regimes=[])
        crash = dataclasses.replace(calm, forced_regimes=[window])
        scenarios.append(CrashScenario(int(seed), window, generate(crash), generate(calm)))
    return scenarios


def crash_stress(policies: dict[str, Policy], scenarios: list[CrashScenario], config: EnvConfig,
                 limits: RiskLimits | None = None,
                 env_kwargs: Callable[[MarketData], dict] | None = None) -> pd.DataFrame:
    """Every policy on every crash path and its twin: one row per (policy, path) with the
    window's metrics on the crash path, the twin's window return, their difference
    (`crash_cost`) and the whole crash path's Sharpe ratio. `env_kwargs(market)` gives feature
    arrays for policies that read them."""
    rows = []
    for scenario in scenarios:
        bars = scenario.crash.timestamps[[scenario.window.start, scenario.window.stop - 1]]
        for name, policy in policies.items():
            walks = {}
            for kind in ("crash", "calm"):
                market = getattr(scenario, kind)
                extra = env_kwargs(market) if env_kwargs is not None else {}
                walks[kind] = run_policy(name, market, config, policy, limits, **extra)
            stats = window_metrics(returns_between(walks["crash"], *bars), scenario.crash.bars_per_year)
            calm = float(np.prod(1.0 + returns_between(walks["calm"], *bars)) - 1.0)
            rows.append({"policy": name, "path_seed": scenario.seed, **stats, "calm_window_return": calm,
                         "crash_cost": stats["window_return"] - calm,
                         "path_sharpe": float(metrics.sharpe_ratio(walks["crash"].returns, 0.0,
                                                                   scenario.crash.bars_per_year)[0])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- historical windows
def historical_stress(policies: dict[str, Policy], market: MarketData, config: EnvConfig,
                      windows: dict[str, tuple[str, str]] | None = None, lead_in: int = 252,
                      limits: RiskLimits | None = None) -> pd.DataFrame:
    """Every policy through each crisis window of `market` (default `CRISIS_WINDOWS`): the
    walk starts `lead_in` bars before the window, so estimators have history, and the first
    decision fills at the window's first bar. One row per (policy, window)."""
    rows = []
    for label, (first, last) in (windows or CRISIS_WINDOWS).items():
        window = market.between(first, last)
        start = int(market.timestamps.get_loc(window.timestamps[0]))
        if start < lead_in:
            raise ValueError(f"window '{label}' starts at {window.timestamps[0]}, {start} bars into market "
                             f"'{market.name}' (from {market.timestamps[0]}): fewer than lead_in={lead_in}")
        walk = market.slice_time(start - lead_in, start + window.n_bars)
        walk_config = dataclasses.replace(config, warmup_bars=lead_in - 1)
        for name, policy in policies.items():
            result = run_policy(name, walk, walk_config, policy, limits)
            rows.append({"policy": name, "window": label, "start": window.timestamps[0].date().isoformat(),
                         "end": window.timestamps[-1].date().isoformat(),
                         **window_metrics(result.returns, market.bars_per_year)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- VaR backtests
def rolling_var(returns: np.ndarray, window: int = 250, confidence: float = 0.99,
                method: str = "historical") -> np.ndarray:
    """(T,) one-bar VaR forecast for each bar from the `window` returns before it (NaN for the
    first `window` bars), by a `VAR_ESTIMATORS` method."""
    if method not in VAR_ESTIMATORS:
        raise KeyError(f"VaR method '{method}' is not one of {sorted(VAR_ESTIMATORS)}")
    r = var.as_series(returns)
    if not 2 <= window < r.size:
        raise ValueError(f"window={window} must be in 2 .. {r.size - 1} for {r.size} returns")
    estimator = VAR_ESTIMATORS[method]
    forecast = np.full(r.size, np.nan)
    for t in range(window, r.size):
        forecast[t] = estimator(r[t - window:t], confidence).var
    return forecast


def var_backtest(returns: np.ndarray, window: int = 250, confidence: float = 0.99,
                 method: str = "historical") -> VaRBacktest:
    """Kupiec, Christoffersen and conditional-coverage tests of the realised returns against
    their rolling VaR forecast, over the bars that have one."""
    r = np.asarray(returns, dtype=np.float64)
    forecast = rolling_var(r, window, confidence, method)
    return backtest_var(r[window:], forecast[window:], confidence)
