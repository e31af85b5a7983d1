"""The report's figures: equity curves, drawdowns, return distributions, allocations over time
shaded by regime, the correlation heat map and the cost stress. Matplotlib on the Agg canvas
(no display needed), saved as PDF through a temporary file (`risk.correlation.save_atomically`).

Curves across seeds show the mean over seeds as a line and the range of the seeds as a band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from envs.market_data import MarketData
from eval import metrics
from risk.correlation import CorrelationTracker, save_atomically

SeedFrames = dict[str, pd.DataFrame]


def _axes(width: float = 7.0, height: float = 3.2) -> tuple[Figure, Any]:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _dates(index: pd.Index) -> np.ndarray:
    return pd.DatetimeIndex(index).tz_convert(None).to_numpy()


def _colours(n: int) -> list:
    return [colormaps["tab20"](k % 20) for k in range(n)]


def _save(figure: Figure, axes: Any, path: Path, ylabel: str) -> None:
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    save_atomically(figure, path)


def _seed_band(axes: Any, series: SeedFrames, transform: Any) -> None:
    for (policy, frame), colour in zip(series.items(), _colours(len(series))):
        values = transform(frame.to_numpy())                                       # (T, S)
        dates = _dates(frame.index)
        axes.plot(dates, values.mean(axis=1), color=colour, lw=1.2, label=policy)
        axes.fill_between(dates, values.min(axis=1), values.max(axis=1), color=colour, alpha=0.15, lw=0)
    axes.legend(fontsize="x-small", ncol=3, loc="best")


def equity_figure(series: SeedFrames, path: Path) -> None:
    """Wealth of one unit invested at the test split's start, per policy."""
    figure, axes = _axes()
    _seed_band(axes, series, metrics.wealth)
    _save(figure, axes, path, "wealth")


def drawdown_figure(series: SeedFrames, path: Path) -> None:
    """Drawdown from the running peak (percent), per policy."""
    figure, axes = _axes()
    _seed_band(axes, series, lambda r: 100.0 * metrics.drawdown(r))
    _save(figure, axes, path, "drawdown (%)")


def distribution_figure(series: SeedFrames, path: Path) -> None:
    """Histogram of bar returns (percent), every seed pooled, per policy, over the central 99 %
    of all the returns shown."""
    figure, axes = _axes()
    pooled = {p: 100.0 * f.to_numpy().ravel() for p, f in series.items()}
    edges = np.linspace(*np.quantile(np.concatenate(list(pooled.values())), [0.005, 0.995]), 61)
    for (policy, values), colour in zip(pooled.items(), _colours(len(pooled))):
        axes.hist(values, bins=edges, density=True, histtype="step", color=colour, label=policy)
    axes.set_xlabel("bar return (%)")
    axes.legend(fontsize="x-small", ncol=3)
    _save(figure, axes, path, "density")


def _shade_regimes(axes: Any, labels: pd.Series) -> None:
    """Background spans of each regime's consecutive bars, one colour per regime."""
    names = list(pd.unique(labels))
    colours = dict(zip(names, _colours(2 * len(names))[1::2]))
    dates = _dates(labels.index)
    change = np.flatnonzero(labels.to_numpy()[1:] != labels.to_numpy()[:-1]) + 1
    starts, stops = np.r_[0, change], np.r_[change, len(labels) - 1]
    shown = set()
    for start, stop in zip(starts, stops):
        name = labels.iloc[start]
        label = str(name).replace("_", " ") if str(name).startswith("regime") else f"regime {name}"
        axes.axvspan(dates[start], dates[stop], color=colours[name], alpha=0.3, lw=0,
                     label=None if name in shown else label)
        shown.add(name)


def allocation_figure(decisions: list[dict], labels: pd.Series | None, path: Path) -> None:
    """The meta-controller's allocation to each domain and its risk appetite at every bar of the
    decision log, over the regime labels as background."""
    index = pd.DatetimeIndex([row["timestamp"] for row in decisions])
    allocation = pd.DataFrame([row["allocation"] for row in decisions], index=index)      # (T, D)
    figure, axes = _axes(7.0, 3.6)
    if labels is not None:
        _shade_regimes(axes, labels.reindex(index).ffill().bfill())
    dates = _dates(index)
    for (domain, share), colour in zip(allocation.items(), _colours(2 * allocation.shape[1])[::2]):
        axes.plot(dates, share.to_numpy(), color=colour, lw=1.4, label=f"allocation: {domain}")
    axes.plot(dates, [row["risk_appetite"] for row in decisions], color="black", lw=1.2, ls="--",
              label="risk appetite")
    axes.set_ylim(0.0, 1.0)
    axes.legend(fontsize="x-small", ncol=3, loc="upper left")
    _save(figure, axes, path, "allocation, risk appetite")


def correlation_figure(market: MarketData, path: Path, window: int = 60) -> None:
    """Heat map of the instruments' `window`-bar return correlation at the bar where their
    average pairwise correlation peaks (`risk.correlation.CorrelationTracker`)."""
    returns = np.expm1(market.log_returns[1:])                                      # (T - 1, N)
    window = min(window, len(returns) - 1)
    tracker = CorrelationTracker(market.symbols, window=window)
    averages = []
    for row in returns:
        tracker.update(row)
        averages.append(tracker.average)
    peak = int(np.nanargmax(averages))
    tracker = CorrelationTracker(market.symbols, window=window)
    for row in returns[: peak + 1]:
        tracker.update(row)
    tracker.heatmap(path)


def cost_figure(costs: pd.DataFrame, path: Path) -> None:
    """Sharpe ratio against the cost factor, per policy (rows (policy, 'sharpe') of
    `eval.results.cost_stress_table`)."""
    figure, axes = _axes(5.0, 3.2)
    sharpe = costs.xs("sharpe", level=1)
    for (policy, row), colour in zip(sharpe.iterrows(), _colours(len(sharpe))):
        axes.plot(row.index.astype(float), row.to_numpy(), marker="o", color=colour, label=policy)
    axes.axhline(0.0, color="grey", lw=0.8)
    axes.set_xlabel("cost factor (x nominal)")
    axes.legend(fontsize="x-small", ncol=2)
    _save(figure, axes, path, "Sharpe ratio")


def placeholder_figure(reason: str, path: Path) -> None:
    """A figure that says why there is nothing to draw, so the paper still compiles."""
    figure, axes = _axes(5.0, 1.5)
    axes.text(0.5, 0.5, f"not available: {reason}", ha="center", va="center", wrap=True)
    axes.set_axis_off()
    figure.tight_layout()
    save_atomically(figure, path)


def probe_figure(behaviour: pd.DataFrame, domain_sharpe: pd.DataFrame, vol: pd.Series, path: Path) -> None:
    """What the meta-controller does in each true regime (`eval.probes`): its mean allocation to
    each domain (bars: mean over seeds, whiskers: the seeds' range) with a star on the domain of
    the best conditional Sharpe ratio in that regime, and its mean risk appetite with the
    regime's equal-weight volatility in the labels. `behaviour` is indexed (seed, regime)."""
    regimes = [r for r in domain_sharpe.index if r in behaviour.index.get_level_values("regime")]
    domains = list(domain_sharpe.columns)
    figure = Figure(figsize=(7.0, 3.2))
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1.0]})
    by_regime = behaviour.groupby(level="regime")
    width = 0.8 / len(domains)
    for k, (domain, colour) in enumerate(zip(domains, _colours(2 * len(domains))[::2])):
        column = f"allocation_{domain}"
        mean, low, high = (getattr(by_regime[column], f)().reindex(regimes) for f in ("mean", "min", "max"))
        x = np.arange(len(regimes)) + (k - (len(domains) - 1) / 2) * width
        left.bar(x, mean, width, color=colour, label=domain,
                 yerr=np.vstack([mean - low, high - mean]), error_kw={"lw": 0.8})
        best = [domain_sharpe.loc[r].idxmax() == domain for r in regimes]
        left.scatter(x[best], (high[best] + 0.03).to_numpy(), marker="*", color="black", s=40, zorder=3)
    left.set_xticks(np.arange(len(regimes)), regimes)
    left.set_ylabel("allocation (star: best domain Sharpe)")
    left.legend(fontsize="x-small", ncol=len(domains), loc="upper left")
    appetite = by_regime["risk_appetite"]
    right.bar(np.arange(len(regimes)), appetite.mean().reindex(regimes), 0.6, color="grey",
              yerr=np.vstack([appetite.mean().reindex(regimes) - appetite.min().reindex(regimes),
                              appetite.max().reindex(regimes) - appetite.mean().reindex(regimes)]))
    right.set_xticks(np.arange(len(regimes)), [f"{r}\nvol {100 * vol.get(r, np.nan):.0f}%" for r in regimes])
    right.set_ylim(0.0, 1.0)
    for axes, label in ((left, None), (right, "risk appetite")):
        if label:
            axes.set_ylabel(label)
        axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    save_atomically(figure, path)
