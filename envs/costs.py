"""Trading-cost and margin parameters: defaults per asset class, overrides per instrument.

The config (`CostConfig`) is what a user edits; `resolve_costs` turns it into `InstrumentCosts`,
flat float64 arrays of shape (N,) in universe order, which is what the simulator kernels read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

ASSET_CLASSES: tuple[str, ...] = ("fx", "commodity", "equity_index", "equity")


@dataclass
class ClassCosts:
    """Cost and margin parameters of one asset class (every rate is a fraction unless named).

    half_spread_bps and half_spread_pips add up: FX quotes spreads in pips (converted at the fill
    price with `pip_size`), other classes in basis points of notional.
    """

    half_spread_bps: float = 0.0
    half_spread_pips: float = 0.0
    pip_size: float = 0.0001
    commission_bps: float = 0.0
    # slippage as a fraction of the instrument's recent daily volatility, per unit of |trade|
    slippage_vol_coef: float = 0.05
    # square-root impact: coef * daily_vol * sqrt(traded notional / average daily traded notional)
    impact_coef: float = 0.1
    # annual financing spread over the short rate, charged per bar on leveraged notional
    financing_spread_bps: float = 100.0
    initial_margin: float = 0.05
    maintenance_margin: float = 0.025


def _default_class_costs() -> dict[str, ClassCosts]:
    return {
        # FX: ~0.5 pip half-spread on majors, retail leverage 30:1 (ESMA) -> 3.33 % initial margin
        "fx": ClassCosts(half_spread_pips=0.5, commission_bps=0.2, financing_spread_bps=50.0,
                         initial_margin=0.0333, maintenance_margin=0.0167),
        # gold and crude: exchange-style margins of 5-10 %
        "commodity": ClassCosts(half_spread_bps=2.0, commission_bps=0.5, financing_spread_bps=100.0,
                                initial_margin=0.10, maintenance_margin=0.05),
        # index CFDs / futures: 20:1 -> 5 %
        "equity_index": ClassCosts(half_spread_bps=1.0, commission_bps=0.5,
                                   financing_spread_bps=100.0, initial_margin=0.05,
                                   maintenance_margin=0.025),
        # single stocks: Reg T style 50 % initial, 25 % maintenance
        "equity": ClassCosts(half_spread_bps=2.0, commission_bps=1.0, financing_spread_bps=150.0,
                             initial_margin=0.50, maintenance_margin=0.25),
    }


@dataclass
class CostConfig:
    """Costs per asset class plus per-instrument overrides (`{symbol: {field: value}}`)."""

    classes: dict[str, ClassCosts] = field(default_factory=_default_class_costs)
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    # JPY pairs quote a pip as 0.01, every other FX pair as 0.0001
    jpy_pip_size: float = 0.01


COST_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ClassCosts))


@dataclass(frozen=True)
class InstrumentCosts:
    """Resolved cost and margin parameters, one float64 array of shape (N,) per field."""

    half_spread_bps: np.ndarray
    half_spread_pips: np.ndarray
    pip_size: np.ndarray
    commission_bps: np.ndarray
    slippage_vol_coef: np.ndarray
    impact_coef: np.ndarray
    financing_spread_bps: np.ndarray
    initial_margin: np.ndarray
    maintenance_margin: np.ndarray

    def take(self, index: np.ndarray) -> InstrumentCosts:
        """The parameters of the instruments at `index`, in that order."""
        return InstrumentCosts(**{k: v[index].copy() for k, v in self.as_dict().items()})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in COST_FIELDS}

    def check(self, symbols: tuple[str, ...]) -> None:
        """Raise if any parameter is negative, non-finite, of the wrong length, or if a
        maintenance margin exceeds its initial margin."""
        for name, values in self.as_dict().items():
            if values.shape != (len(symbols),):
                raise ValueError(f"costs.{name} has shape {values.shape}, expected ({len(symbols)},)")
            bad = ~np.isfinite(values) | (values < 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(f"costs.{name} of {symbols[i]} is {values[i]}: must be finite and >= 0")
        over = self.maintenance_margin > self.initial_margin
        if over.any():
            i = int(np.argmax(over))
            raise ValueError(f"maintenance margin of {symbols[i]} ({self.maintenance_margin[i]}) "
                             f"exceeds its initial margin ({self.initial_margin[i]})")


def resolve_costs(symbols: tuple[str, ...], asset_classes: tuple[str, ...],
                  config: CostConfig | None = None) -> InstrumentCosts:
    """Per-instrument cost arrays from class defaults, the JPY pip rule and overrides."""
    config = config or CostConfig()
    unknown = set(config.overrides) - set(symbols)
    if unknown:
        raise KeyError(f"costs.overrides names instruments not in the universe: {sorted(unknown)}")
    columns: dict[str, list[float]] = {name: [] for name in COST_FIELDS}
    for symbol, asset_class in zip(symbols, asset_classes):
        if asset_class not in config.classes:
            raise KeyError(f"no costs for asset class '{asset_class}' of {symbol}; "
                           f"costs.classes has {sorted(config.classes)}")
        params = dataclasses.asdict(config.classes[asset_class])
        if asset_class == "fx" and "JPY" in symbol.upper():
            params["pip_size"] = config.jpy_pip_size
        for key, value in config.overrides.get(symbol, {}).items():
            if key not in params:
                raise KeyError(f"costs.overrides.{symbol}.{key}: unknown field; one of {COST_FIELDS}")
            params[key] = float(value)
        for name in COST_FIELDS:
            columns[name].append(float(params[name]))
    costs = InstrumentCosts(**{k: np.asarray(v, dtype=np.float64) for k, v in columns.items()})
    costs.check(symbols)
    return costs
