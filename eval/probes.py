"""Probes of what the meta-controller learned, against a synthetic market's ground truth: its
allocation across domains and its risk appetite in each true regime, beside each domain's
conditional Sharpe ratio in that regime (what it should tilt toward) and the regime's volatility
(what it should de-risk in).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.market_data import GroundTruth, MarketData


def ground_truth(market: MarketData) -> GroundTruth:
    """The synthetic market's ground truth; a clear error for a market without one."""
    if market.ground_truth is None:
        raise ValueError(f"market '{market.name}' has no ground truth: no regime probes")
    return market.ground_truth


def regime_series(market: MarketData) -> pd.Series:
    """The true regime's name at each bar of a synthetic market, indexed by timestamp."""
    truth = ground_truth(market)
    names = np.asarray(truth.regime_names)[truth.regime]
    return pd.Series(names, index=pd.Index(market.timestamps, name="timestamp"), name="regime")


def behaviour_by_regime(decisions: list[dict], regimes: pd.Series) -> pd.DataFrame:
    """Mean allocation per domain, mean risk appetite and bar count in each true regime, from a
    decision log (records with `timestamp`, `allocation` {domain: share} and `risk_appetite`)."""
    if not decisions:
        raise ValueError("an empty decision log: nothing to probe")
    stamps = pd.DatetimeIndex([pd.Timestamp(d["timestamp"]) for d in decisions])
    frame = pd.DataFrame([d["allocation"] for d in decisions], index=stamps).add_prefix("allocation_")
    frame["risk_appetite"] = [d["risk_appetite"] for d in decisions]
    frame["regime"] = regimes.reindex(stamps).to_numpy()
    if frame["regime"].isna().any():
        raise ValueError(f"{int(frame['regime'].isna().sum())} decisions fall on bars the market's ground truth lacks")
    grouped = frame.groupby("regime")
    return grouped.mean().assign(bars=grouped.size())


def domain_sharpe_by_regime(market: MarketData, rows: slice | None = None) -> pd.DataFrame:
    """Each domain's conditional Sharpe ratio in each true regime (annualised): per bar and
    instrument the ground truth's expected next-bar log return over its conditional volatility,
    averaged over the domain's instruments and the regime's bars of `rows` (default: all)."""
    truth = ground_truth(market)
    rows = rows or slice(None)
    ratio = truth.expected_returns[rows] / truth.conditional_vol[rows] * np.sqrt(market.bars_per_year)   # (T, N)
    regime = np.asarray(truth.regime_names)[truth.regime[rows]]
    domains = market.domain_index
    frame = pd.DataFrame({d: ratio[:, domains == k].mean(axis=1) for k, d in enumerate(market.domain_names)})
    return frame.groupby(regime).mean()


def realised_vol_by_regime(market: MarketData, rows: slice | None = None) -> pd.Series:
    """The equal-weight book's annualised volatility of log returns in each true regime."""
    rows = rows or slice(None)
    truth = ground_truth(market)
    returns = pd.Series(market.log_returns[rows].mean(axis=1))
    regime = np.asarray(truth.regime_names)[truth.regime[rows]]
    return returns.groupby(regime).std(ddof=1) * np.sqrt(market.bars_per_year)
