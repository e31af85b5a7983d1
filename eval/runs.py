"""Finished runs on disk: writing a run's `eval/` folder, finding finished runs under a folder,
and grouping them into table rows by config without ever mixing two configs in one row.

A finished run is a folder with `eval/metrics.json` beside `.hydra/config.yaml` (the resolved
TrainConfig). Runs pool into one row (a `RunGroup`) when they share the ablation, the market and
the budget; their seeds are pooled. Every other config key must then be equal, or the grouping
fails naming the runs and the keys that differ.

    eval/metrics.json        {"split", "market", "periods_per_year", "seed", "ablation", "budget",
                              "symbols", "domains", "policies": {name: summary}, "pre_cost": {...},
                              "training": {"wall_s": {phase: s}, "env_steps": n}}
    eval/<policy>_{returns,weights,costs,contributions}.parquet          post-cost
    eval/<policy>_precost_{returns,weights,costs,contributions}.parquet  costs scaled to 0
    eval/decisions.jsonl     the hierarchy's decision log (optional)
    eval/regimes.parquet     detected regime probabilities, columns regime_0..K-1 (optional)
    eval/walk_forward.json   walk-forward folds (optional; see eval.results.walk_forward_table)
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf

from envs.config import EnvConfig
from envs.loading import MarketConfig, load_market, split_market
from envs.market_data import MarketData
from eval.backtest import BacktestResult
from hierarchy.decision_log import read_decision_log

# keys whose values may differ between the runs of one row: seeds are pooled (`fabric.seed` is
# `seed` resolved), the experiment is a label and a resumed run is the run it continues
POOLED_KEYS: tuple[str, ...] = ("seed", "fabric.seed", "experiment", "resume")
# learned policies, by the name a run's metrics.json gives them
LEARNED_POLICIES: tuple[str, ...] = ("hierarchy", "flat_ppo")
# metadata every run of a row must share
SHARED_METADATA: tuple[str, ...] = ("split", "market", "periods_per_year", "symbols", "domains")


class MixedConfigError(ValueError):
    """Runs that would share a table row but differ in their config."""


def write_text(path: Path, text: str) -> None:
    """`text` at `path`, through a temporary file in the same folder (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def write_evaluation(folder: str | Path, market: MarketData, results: list[BacktestResult],
                     pre_cost: list[BacktestResult], metadata: dict[str, Any],
                     regime_probs: pd.DataFrame | None = None) -> None:
    """A run's `eval/` folder: every result's frames (pre-cost ones as `<name>_precost_*`), the
    detected regimes if given, and metrics.json last, which marks the run finished. `metadata`
    holds seed, ablation, budget and training (wall times per phase, env steps)."""
    folder = Path(folder)
    for result in results:
        result.write(folder, market.symbols)
    for result in pre_cost:
        dataclasses.replace(result, name=f"{result.name}_precost").write(folder, market.symbols)
    if regime_probs is not None:
        temporary = folder / ".regimes.parquet.tmp"
        regime_probs.rename_axis("timestamp").to_parquet(temporary)
        temporary.replace(folder / "regimes.parquet")
    write_text(folder / "metrics.json", json.dumps({
        "split": "test", "market": market.name, "periods_per_year": market.bars_per_year,
        "symbols": list(market.symbols),
        "domains": {d: list(market.instruments_of(d)) for d in market.domain_names},
        "policies": {r.name: r.summary() for r in results},
        "pre_cost": {r.name: r.summary() for r in pre_cost}, **metadata}, indent=1))


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config as {dotted.key: value}; lists become tuples (comparable, hashable)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


def market_label(market: dict[str, Any]) -> str:
    """'synthetic8 (alpha 1, seed 0)' for a generated market, else the source's name."""
    if market.get("source", "synthetic") != "synthetic":
        return str(market["source"])
    synthetic = market.get("synthetic", {})
    return (f"{synthetic.get('universe', 'synthetic8')} (alpha {synthetic.get('alpha', 1.0):g}, "
            f"seed {synthetic.get('seed', 0)})")


def _read(path: Path, parse: Any, what: str) -> Any:
    try:
        with path.open() as file:
            return parse(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the run has no {what}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: unreadable {what}: {error}") from None


@dataclass(frozen=True)
class Run:
    """One finished run: its folder, resolved config and evaluation metrics."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]

    @classmethod
    def load(cls, path: str | Path) -> Run:
        path = Path(path)
        config = _read(path / ".hydra" / "config.yaml", yaml.safe_load, "resolved config")
        metrics = _read(path / "eval" / "metrics.json", json.load, "evaluation metrics")
        missing = [k for k in ("policies", "pre_cost", *SHARED_METADATA) if k not in metrics]
        if missing:
            raise ValueError(f"{path / 'eval' / 'metrics.json'}: missing keys {missing}")
        return cls(path, config, metrics)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", self.metrics.get("seed", 0)))

    @property
    def ablation(self) -> str:
        return str(self.config.get("ablation", {}).get("name", self.metrics.get("ablation", "full")))

    @property
    def budget(self) -> str:
        return str(self.config.get("budget", {}).get("name", self.metrics.get("budget", "")))

    @property
    def market(self) -> str:
        return market_label(self.config.get("market", {}))

    @property
    def policies(self) -> list[str]:
        return list(self.metrics["policies"])

    @property
    def learned_policy(self) -> str | None:
        return next((p for p in LEARNED_POLICIES if p in self.metrics["policies"]), None)

    def frame(self, policy: str, kind: str, pre_cost: bool = False) -> pd.DataFrame:
        """eval/<policy>[_precost]_<kind>.parquet (kind: returns, weights, costs, contributions)."""
        path = self.path / "eval" / f"{policy}{'_precost' if pre_cost else ''}_{kind}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: run {self.path} has no {kind} of policy '{policy}'")
        return pd.read_parquet(path)

    def has_frame(self, policy: str, kind: str) -> bool:
        return (self.path / "eval" / f"{policy}_{kind}.parquet").exists()

    def decisions(self) -> list[dict[str, Any]] | None:
        path = self.path / "eval" / "decisions.jsonl"
        return read_decision_log(path) if path.exists() else None

    def regimes(self) -> pd.DataFrame | None:
        path = self.path / "eval" / "regimes.parquet"
        return pd.read_parquet(path) if path.exists() else None

    def section(self, schema: type, key: str) -> Any:
        """The config's node `key` as the dataclass `schema`, its defaults filling what is absent."""
        try:
            return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), self.config.get(key) or {}))
        except Exception as error:
            raise ValueError(f"{self.path / '.hydra' / 'config.yaml'}: '{key}' does not fit "
                             f"{schema.__name__}: {error}") from None

    def env_config(self) -> EnvConfig:
        return self.section(EnvConfig, "env")

    def market_config(self) -> MarketConfig:
        return self.section(MarketConfig, "market")

    def evaluation_market(self) -> tuple[MarketData, MarketData]:
        """The split the run was evaluated on (metrics.json's "split"), rebuilt from its config,
        and the market from its first bar to that split's end: the history a walk through the
        split starts its estimates from."""
        config = self.market_config()
        market = load_market(config)
        split = split_market(market, config.split)[self.metrics["split"]]
        stop = int(market.timestamps.get_loc(split.timestamps[-1])) + 1
        return market.slice_time(0, stop), split

    def walk_forward(self) -> dict[str, Any] | None:
        path = self.path / "eval" / "walk_forward.json"
        return _read(path, json.load, "walk-forward results") if path.exists() else None


def find_runs(root: str | Path) -> list[Run]:
    """Every finished run under `root` (folders with eval/metrics.json), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder of runs")
    found = sorted(p.parent.parent for p in root.rglob("eval/metrics.json"))
    if not found:
        raise FileNotFoundError(f"{root}: no finished run (no */eval/metrics.json under it)")
    return [Run.load(path) for path in found]


@dataclass(frozen=True)
class RunGroup:
    """The runs of one table row: one ablation, market and budget; seeds pooled."""

    ablation: str
    market: str
    budget: str
    runs: tuple[Run, ...]

    @property
    def setting(self) -> tuple[str, str]:
        return self.market, self.budget

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    @property
    def policy(self) -> str:
        """The learned policy of the row ('hierarchy', or 'flat_ppo' for the flat ablation)."""
        names = {run.learned_policy for run in self.runs}
        if len(names) != 1 or None in names:
            raise ValueError(f"runs of ablation '{self.ablation}' name learned policies {sorted(map(str, names))}; "
                             f"each run's metrics.json needs one of {LEARNED_POLICIES}")
        return names.pop()

    @property
    def metadata(self) -> dict[str, Any]:
        return {key: self.runs[0].metrics[key] for key in SHARED_METADATA}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{key} ({a.get(key, '<absent>')!r} vs {b.get(key, '<absent>')!r})"
            for key in sorted(set(a) | set(b)) if a.get(key, KeyError) != b.get(key, KeyError)]


def check_same_config(runs: Iterable[Run]) -> None:
    """Raise MixedConfigError naming two runs and the keys they differ in, if the runs differ
    in anything but the pooled keys, in their evaluation metadata, or repeat a seed."""
    runs = list(runs)
    first = runs[0]
    reference = {k: v for k, v in flatten(first.config).items() if k not in POOLED_KEYS}
    seen = {first.seed: first}
    for run in runs[1:]:
        config = {k: v for k, v in flatten(run.config).items() if k not in POOLED_KEYS}
        differences = _differences(reference, config)
        if differences:
            raise MixedConfigError(
                f"runs {first.path} and {run.path} would share one row (ablation={run.ablation}, "
                f"market={run.market}, budget={run.budget}) but their configs differ in "
                f"{'; '.join(differences)}: report them separately")
        metadata = _differences({k: first.metrics[k] for k in SHARED_METADATA},
                                {k: run.metrics[k] for k in SHARED_METADATA})
        if metadata:
            raise MixedConfigError(f"runs {first.path} and {run.path} share a config but their "
                                   f"eval/metrics.json differ in {'; '.join(metadata)}")
        if run.seed in seen:
            raise MixedConfigError(f"runs {seen[run.seed].path} and {run.path} repeat one config with "
                                   f"seed {run.seed}: keep one of them")
        seen[run.seed] = run


def group_runs(runs: Iterable[Run]) -> list[RunGroup]:
    """Runs grouped by (ablation, market, budget), groups and their runs sorted; each group is
    checked with `check_same_config`."""
    buckets: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        buckets.setdefault((run.ablation, run.market, run.budget), []).append(run)
    groups = []
    for (ablation, market, budget), members in sorted(buckets.items()):
        members.sort(key=lambda run: (run.seed, str(run.path)))
        check_same_config(members)
        groups.append(RunGroup(ablation, market, budget, tuple(members)))
    return groups
