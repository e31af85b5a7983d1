"""Compliance rules on hand-made orders: each rule refuses what it should, names itself and
the instrument, and lets the rest through."""

import math

import numpy as np
import pandas as pd
import pytest

from service.compliance import ComplianceCheck, ComplianceRules, Order, orders_of

SYMBOLS = ("EURUSD", "XAUUSD", "SPX500")
CLASSES = ("fx", "commodity", "equity_index")
MONDAY_NOON = pd.Timestamp("2024-01-08 12:00", tz="UTC")


def check(rules: ComplianceRules) -> ComplianceCheck:
    return ComplianceCheck(rules, SYMBOLS, CLASSES)


def refused(check_, orders, stamp=MONDAY_NOON, bar=0):
    accepted, refusals = check_(orders, stamp, bar)
    return [o.symbol for o in accepted], {(r["symbol"], r["rule"]) for r in refusals}


def test_orders_are_the_instruments_whose_targets_move():
    orders = orders_of(SYMBOLS, np.array([0.1, 0.2, 0.0]), np.array([0.1, np.nan, -0.3]), 1000.0)
    assert orders == [Order("SPX500", 0.0, -0.3, 300.0)] and orders[0].side == -1


def test_the_defaults_allow_everything():
    orders = [Order("EURUSD", 0.0, 1.9, 1.9e6), Order("SPX500", 0.5, -0.5, 1e6)]
    assert refused(check(ComplianceRules()), orders) == (["EURUSD", "SPX500"], set())


def test_a_restricted_instrument_may_only_reduce():
    rules = ComplianceRules(restricted=["XAUUSD"])
    grow, reduce, flip = Order("XAUUSD", 0.1, 0.2, 100.0), Order("XAUUSD", 0.2, 0.1, 100.0), \
        Order("XAUUSD", 0.1, -0.05, 150.0)
    assert refused(check(rules), [grow]) == ([], {("XAUUSD", "restricted")})
    assert refused(check(rules), [reduce]) == (["XAUUSD"], set())
    assert refused(check(rules), [flip]) == ([], {("XAUUSD", "restricted")})


@pytest.mark.parametrize("rules, order, rule", [
    (ComplianceRules(max_order_weight=0.2), Order("EURUSD", 0.0, 0.3, 300.0), "max_order_weight"),
    (ComplianceRules(max_order_notional=250.0), Order("EURUSD", 0.0, 0.3, 300.0), "max_order_notional"),
    (ComplianceRules(max_position_weight=0.25), Order("SPX500", 0.1, 0.3, 200.0), "max_position_weight"),
], ids=["order-weight", "order-notional", "position"])
def test_size_limits_refuse_naming_the_rule(rules, order, rule):
    assert refused(check(rules), [order, Order("XAUUSD", 0.0, 0.01, 10.0)]) == (["XAUUSD"], {(order.symbol, rule)})


def test_a_position_over_the_limit_may_still_shrink():
    assert refused(check(ComplianceRules(max_position_weight=0.25)), [Order("SPX500", 0.5, 0.4, 100.0)])[1] == set()


def test_trading_hours_per_asset_class():
    rules = ComplianceRules(trading_hours={"equity_index": "mon-fri 14:30-21:00", "fx": "sun-fri 00:00-24:00"})
    orders = [Order("SPX500", 0.0, 0.1, 100.0), Order("EURUSD", 0.0, 0.1, 100.0)]
    assert refused(check(rules), orders) == (["EURUSD"], {("SPX500", "trading_hours")})
    assert refused(check(rules), orders, pd.Timestamp("2024-01-08 15:00", tz="UTC"))[1] == set()
    saturday = pd.Timestamp("2024-01-13 15:00", tz="UTC")
    assert refused(check(rules), orders, saturday)[1] == {("SPX500", "trading_hours"), ("EURUSD", "trading_hours")}


def test_churning_a_reversal_too_soon_is_refused():
    compliance = check(ComplianceRules(min_reversal_bars=3))
    assert refused(compliance, [Order("EURUSD", 0.0, 0.2, 200.0)], bar=10)[1] == set()
    assert refused(compliance, [Order("EURUSD", 0.2, 0.1, 100.0)], bar=12)[1] == {("EURUSD", "churning")}
    assert refused(compliance, [Order("EURUSD", 0.2, 0.3, 100.0)], bar=12)[1] == set()     # same direction
    assert refused(compliance, [Order("EURUSD", 0.3, 0.1, 200.0)], bar=15)[1] == set()     # 3 bars later


def test_self_crossing_orders_are_both_refused():
    orders = [Order("EURUSD", 0.0, 0.2, 200.0), Order("EURUSD", 0.0, -0.2, 200.0), Order("SPX500", 0.0, 0.1, 100.0)]
    accepted, refusals = check(ComplianceRules())(orders, MONDAY_NOON, 0)
    assert [o.symbol for o in accepted] == ["SPX500"]
    assert [r["rule"] for r in refusals] == ["self_crossing", "self_crossing"]


@pytest.mark.parametrize("rules, key", [
    (ComplianceRules(max_order_weight=0.0), "compliance.max_order_weight"),
    (ComplianceRules(min_reversal_bars=-1), "compliance.min_reversal_bars"),
    (ComplianceRules(trading_hours={"fx": "weekdays"}), "compliance.trading_hours.fx"),
    (ComplianceRules(trading_hours={"fx": "mon-fri 18:00-09:00"}), "compliance.trading_hours.fx"),
])
def test_bad_rules_are_named(rules, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        rules.check()


def test_rules_default_to_infinity():
    assert math.isinf(ComplianceRules().max_order_notional)
