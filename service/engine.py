"""`DecisionService`: bars in, decisions out, one bar at a time, crash-safe and audited.

Each bar, in order:
  1. the bar is checked: its stamp after the last one (out of order, duplicate) and within the
     universe's calendar (a gap), every instrument of the universe and no other, finite
     positive prices and non-negative volume, the universe's macro series (a missing print is
     NaN). A bad bar is refused with a reason and logged; nothing else changes;
  2. the streaming features and the simulator's table rows advance (`features.streaming`,
     `service.tables`); the paper book (`service.book`) fills the last decision's orders at
     this bar and marks to its close, or opens flat on the first bar;
  3. the kill switch: drawdown from the book's peak, an instrument's OHLC repeated for
     `stale_bars` bars, an input that had started and is NaN (a feature NaN), or a ruined
     book flatten the book and hold it flat until `reset_kill_switch`;
  4. otherwise the hierarchy decides (`service.policy`: `HierarchicalSystem.decide` with the
     exported networks), the risk overlay shrinks the targets (`risk.env_hook.RiskHook.apply`, as
     in a backtest), and each order passes the compliance rules (`service.compliance`); a
     refused order is not sent and its instrument is held;
  5. the decision is appended to the hash-chained audit log, then the whole state (features,
     tables, book, decision rhythm, risk tracker, compliance memory, pending orders) is written
     atomically (the normalisation windows' rows live in memory-mapped files, one row written a
     bar: `features.streaming.Ring.keep_in`). A service killed between the two re-decides that
     bar on restart, finds the same record at the log's end and does not append it twice.

With the permissive default rules and no kill, the decisions are the backtest's bit for bit.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.streaming import Bar
from risk.env_hook import RiskHook
from service.arrays import StateFile
from service.artifact import Artifact, ServiceConfig
from service.audit import AuditLog, canonical
from service.book import PaperBook
from service.compliance import ComplianceCheck, orders_of
from service.policy import ScriptedHierarchy
from storage.atomic import json_ready

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
RINGS = ("instrument_norm", "global_norm")     # the large rings, kept in memory-mapped files
TRACKER_FIELDS = ("peak", "drawdown", "flat_left", "episode_step", "step")


class BarRefused(ValueError):
    """A bar the service will not take; the message says why."""


def _values(symbols: tuple[str, ...], values: np.ndarray) -> dict[str, float | None]:
    """{symbol: value} as Python floats, NaN as None (JSON's null: a hold)."""
    return {s: (None if v != v else v) for s, v in zip(symbols, values.tolist())}


def _text(array: np.ndarray) -> str:
    return bytes(array.astype(np.uint8)).decode()


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8).copy()


class DecisionService:
    """The service over one artifact, its state kept in `state_dir` (state.bin, audit.jsonl);
    a folder holding a state resumes where it stopped."""

    def __init__(self, artifact: Artifact, state_dir: str | Path, config: ServiceConfig | None = None) -> None:
        self.artifact = artifact
        self.config = config if config is not None else artifact.config("service")
        self.config.check()
        universe, history = artifact.universe, artifact.manifest["history"]
        self.symbols, self.macro_names = artifact.symbols, tuple(universe["macro_names"])
        self.has_ohlc, self.has_volume = np.asarray(universe["has_ohlc"]), np.asarray(universe["has_volume"])
        self.takes_sentiment = bool(universe["sentiment"] and artifact.config("features").sentiment)
        self.max_gap = pd.Timedelta(int(history["max_gap_ns"]), unit="ns")
        self.features, self.tables = artifact.new_features(), artifact.new_tables()
        self.features.load_state_dict(artifact.stream_state, "features.")
        self.tables.load_state_dict(artifact.stream_state, "tables.")
        n_global = len(self.tables.upper[0]) + len(artifact.manifest["names"]["global"]) \
            + len(artifact.manifest["names"]["regime"])
        market = artifact.universe_market()
        self.book = PaperBook(market, artifact.config("env"), len(artifact.manifest["names"]["instrument"]), n_global)
        self.policy = ScriptedHierarchy(self.book, artifact.config("hierarchy"), artifact.meta, artifact.specialists,
                                        artifact.manifest["fixed_meta"])
        self.risk = RiskHook(artifact.config("risk"), market, 1)     # one continuous episode: no restarts
        self.compliance = ComplianceCheck(self.config.compliance, self.symbols, tuple(universe["asset_classes"]))
        N = len(self.symbols)
        self.pending = np.full((1, N), np.nan)                          # the last decision's orders (NaN: hold)
        self.last_stamp = int(history["last_stamp_ns"])
        self.previous_ohlc = np.asarray(history["last_ohlc"], dtype=np.float64)
        self.repeats = np.zeros(N, dtype=np.int64)                     # bars each instrument's OHLC repeated
        self.bars = 0                                                  # bars decided
        self.halted = ""                                               # the kill switch's reason, "" when off
        self.state_file = StateFile(Path(state_dir) / "state.bin")
        self.audit = AuditLog(Path(state_dir) / "audit.jsonl")
        self.unsaved: dict | None = None
        for name in RINGS:                     # the rows of the normalisation windows: one row written a bar
            getattr(self.features, name).ring.keep_in(Path(state_dir) / f"{name}.npy", not self.state_file.exists())
        if self.state_file.exists():
            self._load()

    # ------------------------------------------------------------------ a bar
    def on_bar(self, message: dict) -> dict[str, Any]:
        """The decision of one bar (see module docstring), or its refusal: a JSON-ready dict
        with "status" 'decided', 'halted' or 'refused', and "service_ms"."""
        started = time.perf_counter()
        try:
            bar = self.parse(message)
        except BarRefused as refusal:
            self.audit.append({"type": "refusal", "reason": str(refusal), "input": message})
            self._save()                                             # the same state, with the log's new length
            return {"status": "refused", "reason": str(refusal), "service_ms": (time.perf_counter() - started) * 1e3}
        record = self._decide(bar, message)
        if self.unsaved is not None:
            if canonical(record) != canonical(self.unsaved):
                raise RuntimeError(f"bar {record['timestamp']}: the decision differs from the one logged before the "
                                   f"restart ({self.audit.path}, seq {self.audit.seq})")
            self.unsaved = None
        else:
            self.audit.append(record)
        self._save()
        return {**record, "service_ms": (time.perf_counter() - started) * 1e3}

    def parse(self, message: dict) -> Bar:
        """The bar a message holds, or BarRefused naming what is wrong with it."""
        if not isinstance(message, dict) or not {"timestamp", "prices"} <= set(message):
            raise BarRefused("a bar is a JSON object with 'timestamp' and 'prices' (and 'macro', 'sentiment')")
        try:
            stamp = pd.Timestamp(message["timestamp"])
        except (ValueError, TypeError):
            raise BarRefused(f"timestamp '{message['timestamp']}' is not a date") from None
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        last = pd.Timestamp(self.last_stamp, unit="ns", tz="UTC")
        if stamp.value == self.last_stamp:
            raise BarRefused(f"duplicate: bar {stamp} was already taken")
        if stamp.value < self.last_stamp:
            raise BarRefused(f"out of order: bar {stamp} is older than the last bar taken, {last}")
        if self.unsaved is not None and stamp != pd.Timestamp(self.unsaved["timestamp"]):
            raise BarRefused(f"the service stopped after logging bar {self.unsaved['timestamp']} and before saving "
                             f"its state: send that bar again first")
        if stamp - last > self.max_gap:
            raise BarRefused(f"gap: {stamp - last} since the last bar ({last}); the universe's calendar has at most "
                             f"{self.max_gap} between bars: send the bars in between first")
        prices = message["prices"]
        unknown = sorted(set(prices) - set(self.symbols)) if isinstance(prices, dict) else ["<not an object>"]
        if unknown:
            raise BarRefused(f"unknown symbol(s) {unknown}: the universe is {list(self.symbols)}")
        missing = [s for s in self.symbols if s not in prices]
        if missing:
            raise BarRefused(f"bar {stamp} lacks {missing}")
        ohlcv = np.full((len(self.symbols), len(PRICE_FIELDS)), np.nan)
        for i, symbol in enumerate(self.symbols):
            ohlcv[i] = self._prices(symbol, prices[symbol], self.has_ohlc[i], self.has_volume[i])
        observed = np.array([not prices[s].get("forward_filled", False) for s in self.symbols])
        macro = self._series(message.get("macro") or {}, self.macro_names, "macro")
        sentiment = self._series(message.get("sentiment") or {}, self.symbols, "sentiment") \
            if self.takes_sentiment else None
        return Bar(stamp, ohlcv, macro, sentiment, observed)

    @staticmethod
    def _prices(symbol: str, fields: Any, has_ohlc: bool, has_volume: bool) -> np.ndarray:
        needed = (("open", "high", "low", "close") if has_ohlc else ("close",)) + (("volume",) if has_volume else ())
        if not isinstance(fields, dict) or any(f not in fields for f in needed):
            raise BarRefused(f"{symbol}: needs {list(needed)}, got {fields}")
        row = np.full(len(PRICE_FIELDS), np.nan)
        for field in needed:
            value = fields[field]
            if not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (value <= 0 if field != "volume" else value < 0):
                raise BarRefused(f"{symbol}.{field} = {value}: a price must be finite and > 0, "
                                 "a volume finite and >= 0")
            row[PRICE_FIELDS.index(field)] = value
        if has_ohlc and not row[2] <= min(row[0], row[3]) <= max(row[0], row[3]) <= row[1]:
            raise BarRefused(f"{symbol}: open {row[0]} / close {row[3]} outside low {row[2]} .. high {row[1]}")
        return row

    @staticmethod
    def _series(values: Any, names: tuple[str, ...], what: str) -> np.ndarray:
        """Named values (None or NaN: no print), every name present and no other."""
        if not isinstance(values, dict) or set(values) != set(names):
            given = sorted(values) if isinstance(values, dict) else values
            raise BarRefused(f"{what} must name exactly {list(names)}, got {given}")
        if any(v is not None and not isinstance(v, (int, float)) for v in values.values()):
            raise BarRefused(f"{what} values must be numbers or null, got {values}")
        return np.array([np.nan if values[n] is None else float(values[n]) for n in names])

    # ------------------------------------------------------------------ decide
    def _decide(self, bar: Bar, message: dict) -> dict[str, Any]:
        row = self.features.update(bar)
        table_row = self.tables.update(bar, row)
        filled = None
        if self.book.opened:
            filled = self.book.advance(self.pending, table_row)
        else:
            self.book.open(table_row)
        self._watch(bar, row.missing, filled)
        equity = float(self.book.equity[0])
        current = self.book.weights[0].copy()
        record: dict[str, Any] = {
            "type": "decision", "timestamp": str(bar.timestamp), "bar": self.bars, "input": message,
            "filled": None if filled is None else _values(self.symbols, filled["executed_weights"][0]),
            "costs": None if filled is None else float(filled["costs"][0].sum()),
            "liquidated": None if filled is None else bool(filled["liquidated"][0]),
            "equity": equity, "weights": _values(self.symbols, current), "kill_switch": self.halted or None}
        if self.halted:
            sent, refusals = np.zeros((1, len(self.symbols))), []   # flatten: the kill switch overrides the rules
            record["status"] = "halted"
        else:
            sent, refusals = self._policy(bar, record, current, equity)
            record["status"] = "decided"
        record["orders"] = [{"symbol": o.symbol, "side": "buy" if o.side > 0 else "sell",
                             "current_weight": o.current_weight, "target_weight": o.target_weight,
                             "notional": o.notional} for o in orders_of(self.symbols, current, sent[0], equity)]
        record["refusals"] = refusals
        self.pending = sent
        self.last_stamp = bar.timestamp.value
        self.bars += 1
        return record

    def _policy(self, bar: Bar, record: dict, current: np.ndarray, equity: float) -> tuple[np.ndarray, list[dict]]:
        """The hierarchy's targets through the risk overlay and the compliance rules: the
        orders to send (1, N) (NaN: hold) and the refusals."""
        decision = self.policy.decide(self.book, deterministic=True)
        targets = decision.target_weights
        overlaid = self.risk.apply(targets, self.book.weights, self.book.covariance(), self.book.equity)
        report = self.risk.report
        _, refusals = self.compliance(orders_of(self.symbols, current, overlaid[0], equity), bar.timestamp, self.bars)
        sent = overlaid.copy()
        for refusal in refusals:
            sent[0, self.symbols.index(refusal["symbol"])] = np.nan
        record.update(
            allocation=_values(self.policy.domain_names, decision.allocation[0]),
            risk_appetite=float(decision.appetite[0]), meta_acted=bool(decision.meta_acted[0]),
            signals=_values(self.symbols, decision.signals[0]), target_weights=_values(self.symbols, targets[0]),
            overlay_weights=_values(self.symbols, overlaid[0]),
            limits_bound=list(report.binding_limits(0)), risk_halted=bool(report.halted[0]))
        return sent, refusals

    def _watch(self, bar: Bar, missing: tuple[str, ...], filled: dict | None) -> None:
        """Fire the kill switch (see module docstring); it stays on until reset."""
        ohlc = bar.ohlcv[:, :4]
        same = np.all((ohlc == self.previous_ohlc) | (np.isnan(ohlc) & np.isnan(self.previous_ohlc)), axis=1)
        self.repeats = np.where(bar.observed, np.where(same, self.repeats + 1, 0), self.repeats)   # a fill is no print
        self.previous_ohlc = ohlc.copy()
        if self.halted:
            return
        kill = self.config.kill_switch
        drawdown = float(self.book.drawdown[0])
        stale = np.flatnonzero(self.repeats >= kill.stale_bars)
        if filled is not None and filled["terminated"][0]:
            self.halted = "ruin: equity <= 0"
        elif drawdown > kill.max_drawdown:
            self.halted = f"drawdown {drawdown:.4f} > kill_switch.max_drawdown {kill.max_drawdown}"
        elif stale.size:
            self.halted = (f"stale data: {[self.symbols[i] for i in stale]} repeated the same OHLC for "
                           f"{kill.stale_bars} bars")
        elif missing:
            self.halted = f"feature NaN: {list(missing)[:8]}"

    def reset_kill_switch(self, note: str = "") -> dict[str, Any]:
        """Let the service trade again after the kill switch fired (logged, with `note`)."""
        record = {"type": "kill_switch_reset", "was": self.halted or None, "note": note}
        self.halted = ""
        self.repeats[:] = 0
        self.audit.append(record)
        self._save()
        return record

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Everything that evolves, as arrays keyed by part."""
        arrays = {f"features.{k}": v for k, v in self.features.state_dict().items()}
        arrays.update({f"tables.{k}": v for k, v in self.tables.state_dict().items()})
        arrays.update({f"book.{k}": v for k, v in self.book.state_dict().items()})
        arrays.update({f"policy.{k}": v for k, v in self.policy.state_dict_arrays().items()})
        arrays.update({f"tracker.{k}": np.asarray(getattr(self.risk.tracker, k)) for k in TRACKER_FIELDS})
        arrays.update({"compliance.last_side": self.compliance.last_side,
                       "compliance.last_bar": self.compliance.last_bar, "pending": self.pending,
                       "last_stamp": np.array(self.last_stamp),
                       "previous_ohlc": self.previous_ohlc, "repeats": self.repeats, "bars": np.array(self.bars),
                       "halted": _bytes(self.halted), "artifact": _bytes(self.artifact.content_hash),
                       "audit_seq": np.array(self.audit.seq)})
        return arrays

    def _save(self) -> None:
        self.state_file.write(self.state_dict())

    def _load(self) -> None:
        arrays = self.state_file.read()
        if _text(arrays["artifact"]) != self.artifact.content_hash:
            raise ValueError(f"{self.state_file.path} belongs to artifact {_text(arrays['artifact'])}, not "
                             f"{self.artifact.content_hash} ({self.artifact.path}); use another state folder")
        part = lambda prefix: {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
        self.features.load_state_dict(arrays, "features.")
        self.tables.load_state_dict(arrays, "tables.")
        self.book.load_state_dict(part("book."))
        self.policy.load_state_dict_arrays(part("policy."))
        for name in TRACKER_FIELDS:
            value = arrays[f"tracker.{name}"]
            setattr(self.risk.tracker, name, value.copy() if value.ndim else int(value))
        self.compliance.last_side, self.compliance.last_bar = (arrays[f"compliance.{k}"].copy()
                                                               for k in ("last_side", "last_bar"))
        self.pending, self.previous_ohlc, self.repeats = (arrays[k].copy() for k in ("pending", "previous_ohlc",
                                                                                     "repeats"))
        self.last_stamp, self.bars = int(arrays["last_stamp"]), int(arrays["bars"])
        self.halted = _text(arrays["halted"])
        self._reconcile(int(arrays["audit_seq"]))

    def _reconcile(self, saved_seq: int) -> None:
        """The audit log may end one record past the state (killed between the two writes):
        a decision is re-decided when its bar comes again (and not logged twice), a refusal
        changed nothing, a kill-switch reset is applied. Anything else means the log and the
        state do not belong together."""
        last = self.audit.last
        where = f"{self.audit.path} (seq {self.audit.seq}) and {self.state_file.path} (seq {saved_seq})"
        if self.audit.seq < saved_seq:
            raise ValueError(f"{where}: the log has fewer records than the state saw: records were removed")
        if self.audit.seq == saved_seq or (self.audit.seq == saved_seq + 1 and last["type"] == "refusal"):
            return
        if self.audit.seq == saved_seq + 1 and last["type"] == "kill_switch_reset":
            self.halted, self.repeats[:] = "", 0
        elif (self.audit.seq == saved_seq + 1 and last["type"] == "decision"
              and pd.Timestamp(last["timestamp"]).value > self.last_stamp):
            self.unsaved = last
        else:
            raise ValueError(f"{where}: the log runs past the state by more than the record of one bar")

    def status(self) -> dict[str, Any]:
        """Where the service stands: bars decided, the last bar, equity, the kill switch, the
        audit head."""
        return json_ready({"artifact": self.artifact.content_hash, "bars": self.bars,
                           "last_bar": str(pd.Timestamp(self.last_stamp, unit="ns", tz="UTC")),
                           "equity": float(self.book.equity[0]) if self.book.opened else None,
                           "kill_switch": self.halted or None, "audit_records": self.audit.seq + 1,
                           "audit_head": self.audit.head})

    def close(self) -> None:
        self.audit.close()
        self.state_file.close()
