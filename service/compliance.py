"""Compliance rules checked before each order: restricted instruments, maximum order and
position size, trading hours per asset class, and no self-crossing or churning.

An order is one instrument's trade of a decision: from its current weight to the target the
risk overlay left (weights are fractions of equity; notional = |change| x equity). A refused
order is not sent (the instrument is held) and the refusal names the rule, the instrument and
the numbers. Rules are plain config (`ComplianceRules`, e.g. a YAML file):

    restricted: [WTIUSD]                 # no order may open or grow a position; reducing one may
    max_order_weight: 0.5                # |target - current| per order
    max_order_notional: 250000.0         # |target - current| x equity, money
    max_position_weight: 0.8             # |target|
    trading_hours: {equity_index: "mon-fri 00:00-21:00"}   # UTC, by the decision bar's stamp
    min_reversal_bars: 3                 # churning: no reversal of an instrument's last order sooner

Self-crossing: two orders of one decision on the same instrument in opposite directions are
both refused (the service sends one net order per instrument, so only a malformed batch has them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class ComplianceRules:
    """The rules (see the module docstring); the defaults allow everything."""

    restricted: list[str] = field(default_factory=list)
    max_order_weight: float = math.inf
    max_order_notional: float = math.inf
    max_position_weight: float = math.inf
    trading_hours: dict[str, str] = field(default_factory=dict)   # asset class -> "mon-fri HH:MM-HH:MM"
    min_reversal_bars: int = 0

    def check(self) -> None:
        """Raise ValueError naming the key of a rule out of its domain."""
        for key in ("max_order_weight", "max_order_notional", "max_position_weight"):
            if not getattr(self, key) > 0:
                raise ValueError(f"compliance.{key}={getattr(self, key)} must be > 0")
        if self.min_reversal_bars < 0:
            raise ValueError(f"compliance.min_reversal_bars={self.min_reversal_bars} must be >= 0")
        for asset_class, window in self.trading_hours.items():
            parse_hours(window, f"compliance.trading_hours.{asset_class}")


@dataclass(frozen=True)
class Order:
    """One instrument's trade of a decision."""

    symbol: str
    current_weight: float
    target_weight: float
    notional: float                  # |target - current| x equity

    @property
    def side(self) -> int:
        """+1 buy, -1 sell."""
        return 1 if self.target_weight > self.current_weight else -1


def parse_hours(window: str, key: str) -> tuple[set[int], int, int]:
    """("mon-fri 00:00-21:00") -> (weekdays, first minute, last minute + 1) in UTC; a day range
    may wrap the week ("sun-thu")."""
    try:
        days, hours = window.split()
        first_day, _, last_day = days.lower().partition("-")
        first, last = DAYS.index(first_day), DAYS.index(last_day or first_day)
        span = [d % 7 for d in range(first, last + 1 + (7 if last < first else 0))]     # sun-fri wraps
        start, _, end = hours.partition("-")
        minutes = [int(h) * 60 + int(m) for h, m in (start.split(":"), end.split(":"))]
    except ValueError:
        raise ValueError(f"{key}='{window}' is not 'mon-fri HH:MM-HH:MM'") from None
    if not 0 <= minutes[0] < minutes[1] <= 24 * 60:
        raise ValueError(f"{key}='{window}' names an empty window")
    return set(span), minutes[0], minutes[1]


def orders_of(symbols: tuple[str, ...], current: np.ndarray, targets: np.ndarray, equity: float) -> list[Order]:
    """One order per instrument whose target (NaN: hold) differs from its current weight."""
    return [Order(s, float(c), float(w), abs(float(w) - float(c)) * equity)
            for s, c, w in zip(symbols, current, targets) if not np.isnan(w) and w != c]


class ComplianceCheck:
    """`ComplianceRules` for a universe, with the memory churning needs (each instrument's last
    order: its side and the bar it was sent at)."""

    def __init__(self, rules: ComplianceRules, symbols: tuple[str, ...], asset_classes: tuple[str, ...]) -> None:
        rules.check()
        self.rules, self.symbols = rules, tuple(symbols)
        self.asset_class = dict(zip(symbols, asset_classes))
        self.hours = {c: parse_hours(w, f"compliance.trading_hours.{c}") for c, w in rules.trading_hours.items()}
        self.last_side = np.zeros(len(symbols), dtype=np.int64)      # 0: none yet
        self.last_bar = np.full(len(symbols), -(2**62), dtype=np.int64)

    def __call__(self, orders: list[Order], stamp: pd.Timestamp, bar: int) -> tuple[list[Order], list[dict]]:
        """(orders accepted, refusals) of one decision taken at `stamp`, bar number `bar`."""
        sides: dict[str, set[int]] = {}
        for order in orders:
            sides.setdefault(order.symbol, set()).add(order.side)
        accepted, refusals = [], []
        for order in orders:
            reason = self._refusal(order, stamp, bar, crossing=len(sides[order.symbol]) > 1)
            if reason is None:
                accepted.append(order)
            else:
                refusals.append({"symbol": order.symbol, "rule": reason[0], "detail": reason[1],
                                 "current_weight": order.current_weight, "target_weight": order.target_weight})
        for order in accepted:
            i = self.symbols.index(order.symbol)
            self.last_side[i], self.last_bar[i] = order.side, bar
        return accepted, refusals

    def _refusal(self, order: Order, stamp: pd.Timestamp, bar: int, crossing: bool) -> tuple[str, str] | None:
        rules, symbol = self.rules, order.symbol
        change = abs(order.target_weight - order.current_weight)
        grows = abs(order.target_weight) > abs(order.current_weight) or order.target_weight * order.current_weight < 0
        if crossing:
            return "self_crossing", f"orders of this decision buy and sell {symbol}"
        if symbol in rules.restricted and grows:
            return "restricted", f"{symbol} is restricted: an order may only reduce its position"
        if abs(order.target_weight) > rules.max_position_weight and grows:
            return "max_position_weight", f"|{order.target_weight:.6g}| > {rules.max_position_weight}"
        if change > rules.max_order_weight:
            return "max_order_weight", f"|{change:.6g}| > {rules.max_order_weight}"
        if order.notional > rules.max_order_notional:
            return "max_order_notional", f"{order.notional:.2f} > {rules.max_order_notional}"
        window = self.hours.get(self.asset_class[symbol])
        if window is not None:
            days, first, end = window
            minute = stamp.hour * 60 + stamp.minute
            if stamp.weekday() not in days or not first <= minute < end:
                return "trading_hours", (f"{stamp} is outside {self.asset_class[symbol]}'s hours "
                                         f"'{rules.trading_hours[self.asset_class[symbol]]}'")
        i = self.symbols.index(symbol)
        if self.last_side[i] == -order.side and bar - self.last_bar[i] < rules.min_reversal_bars:
            return "churning", (f"{symbol}'s last order, {bar - self.last_bar[i]} bars ago, went the other way "
                                f"(min_reversal_bars={rules.min_reversal_bars})")
        return None
