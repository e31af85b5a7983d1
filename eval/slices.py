"""Results sliced by market regime and attributed to domains.

A bar's return is attributed to the regime labelled at its timestamp: the regime in which it was
realised (ground truth), or the most probable detected regime at that bar's close (the filtered
probabilities of `eval/regimes.parquet`, which use data up to that close only). Bars of one regime
are scored as one series (eval.metrics conventions); the drawdown of a regime's scattered bars
means nothing and is left out. Domain attribution sums each instrument's contribution to the
bar's return (PnL net of its costs, over the equity before the bar) within its domain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval import metrics

REGIME_METRICS: tuple[str, ...] = ("share", "ann_return", "ann_vol", "sharpe", "var", "hit_rate")


def regime_labels(probabilities: pd.DataFrame) -> pd.Series:
    """The most probable regime (column name) at each timestamp; NaN rows (warm-up) drop out."""
    filled = probabilities.dropna(how="any")
    return pd.Series(filled.to_numpy().argmax(axis=1), index=filled.index).map(dict(enumerate(filled.columns)))


def metrics_by_regime(returns: pd.Series, labels: pd.Series,
                      periods_per_year: float = metrics.TRADING_DAYS) -> pd.DataFrame:
    """Rows: the regimes present, sorted; columns `REGIME_METRICS` (share: of the labelled bars).
    Returns without a label are left out; a regime with fewer than 2 bars gets NaN metrics."""
    aligned = labels.reindex(returns.index)
    known = aligned.notna()
    if not known.any():
        raise ValueError(f"no regime label on any of the {len(returns)} return timestamps "
                         f"({returns.index[0]} .. {returns.index[-1]})")
    rows = {}
    for regime in sorted(pd.unique(aligned[known])):
        r = returns[aligned == regime].to_numpy()
        row = {"share": r.size / int(known.sum())}
        if r.size >= 2:
            row.update(ann_return=metrics.annual_return(r, periods_per_year)[0],
                       ann_vol=metrics.annual_volatility(r, periods_per_year)[0],
                       sharpe=metrics.sharpe_ratio(r, 0.0, periods_per_year)[0],
                       var=metrics.value_at_risk(r)[0], hit_rate=metrics.hit_rate(r)[0])
        rows[regime] = row
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(REGIME_METRICS)).astype(float)


def domain_attribution(weights: pd.DataFrame, contributions: pd.DataFrame, domains: dict[str, list[str]],
                       periods_per_year: float = metrics.TRADING_DAYS) -> pd.DataFrame:
    """Rows: domains; columns: mean gross and net exposure (sum |w|, sum w over the domain),
    the annualised sum of its contributions (`ann_contribution`, arithmetic: the domains add up
    to the mean return times periods_per_year) and its share of the total."""
    listed = [s for members in domains.values() for s in members]
    unknown = sorted(set(listed) ^ set(weights.columns))
    if unknown or set(contributions.columns) != set(weights.columns):
        raise ValueError(f"domains {domains} must partition the instruments {list(weights.columns)} of "
                         f"weights and contributions {list(contributions.columns)}; mismatched: {unknown}")
    rows = {}
    for domain, members in domains.items():
        w = weights[members].to_numpy()
        rows[domain] = {"gross_exposure": float(np.abs(w).sum(axis=1).mean()),
                        "net_exposure": float(w.sum(axis=1).mean()),
                        "ann_contribution": float(contributions[members].to_numpy().sum(axis=1).mean()
                                                  * periods_per_year)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    total = table["ann_contribution"].sum()
    table["share_of_return"] = table["ann_contribution"] / total if total != 0 else np.nan
    return table
