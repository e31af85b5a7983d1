"""Descriptive statistics of a market: what `make demo` prints before any training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from envs.market_data import MarketData


def instrument_summary(market: MarketData, reference: str = "SPX500") -> pd.DataFrame:
    """Per instrument: annualised return and volatility of daily log returns, correlation to
    `reference` (the first equity index if absent), and, on synthetic markets, the annualised
    return inside each ground-truth regime."""
    returns = market.log_returns[1:]                                    # (T-1, N)
    per_year = market.bars_per_year
    if reference not in market.symbols:
        indices = [s for s, c in zip(market.symbols, market.asset_classes) if c == "equity_index"]
        reference = indices[0] if indices else market.symbols[0]
    ref = returns[:, market.symbols.index(reference)]
    table = pd.DataFrame({
        "domain": market.domains,
        "ann_return": np.expm1(returns.mean(axis=0) * per_year),
        "ann_vol": returns.std(axis=0, ddof=1) * np.sqrt(per_year),
        f"corr_{reference}": [np.corrcoef(returns[:, i], ref)[0, 1] for i in range(market.n_instruments)],
    }, index=pd.Index(market.symbols, name="instrument"))
    truth = market.ground_truth
    if truth is not None:
        regime = truth.regime[1:]
        for k, name in enumerate(truth.regime_names):
            inside = regime == k
            table[f"ret|{name}"] = (np.expm1(returns[inside].mean(axis=0) * per_year)
                                    if inside.any() else np.nan)
    return table


def regime_occupancy(market: MarketData) -> pd.DataFrame:
    """Share of bars and mean spell length (bars) of each ground-truth regime."""
    truth = market.ground_truth
    if truth is None:
        raise ValueError(f"market '{market.name}' has no ground-truth regimes")
    changes = np.flatnonzero(np.diff(truth.regime)) + 1
    spells = np.split(truth.regime, changes)
    rows = []
    for k, name in enumerate(truth.regime_names):
        lengths = [len(s) for s in spells if s[0] == k]
        rows.append({"regime": name, "share": float(np.mean(truth.regime == k)),
                     "spells": len(lengths), "mean_length": float(np.mean(lengths)) if lengths else 0.0})
    return pd.DataFrame(rows).set_index("regime")
