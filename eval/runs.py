"""Finished runs on disk: finding them under a folder and grouping them into table rows by
config, without ever mixing two configs in one row.

A finished run is a run folder (`learners.run.folder`) with `eval/metrics.json`; its config and
evaluation are read through the folder's typed readers. Runs pool into one row (a `RunGroup`)
when they share the ablation, the market and the budget; their seeds are pooled. Every other
config key must then be equal, or the grouping fails naming the runs and the keys that differ.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.loading import MarketConfig, load_market, split_market
from envs.market_data import MarketData
from learners.run.config import TrainConfig
from learners.run.folder import EvaluationRecord, RunFolder
from learners.run.restore import LEARNED_POLICIES

# keys whose values may differ between the runs of one row: seeds are pooled (`fabric.seed` is
# `seed` resolved), the experiment is a label and a resumed run is the run it continues
POOLED_KEYS: tuple[str, ...] = ("seed", "fabric.seed", "experiment", "resume")
# evaluation metadata every run of a row must share
SHARED_METADATA: tuple[str, ...] = ("split", "market", "periods_per_year", "symbols", "domains")


class MixedConfigError(ValueError):
    """Runs that would share a table row but differ in their config."""


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


def market_label(market: MarketConfig) -> str:
    """'synthetic8 (alpha 1, seed 0)' for a generated market, else the source's name."""
    if market.source != "synthetic":
        return market.source
    synthetic = market.synthetic
    return f"{synthetic.universe} (alpha {synthetic.alpha:g}, seed {synthetic.seed})"


@dataclass(frozen=True)
class Run:
    """One finished run: its folder, typed config and evaluation record."""

    folder: RunFolder
    config: TrainConfig
    evaluation: EvaluationRecord

    @classmethod
    def load(cls, path: str | Path) -> Run:
        folder = RunFolder(path)
        return cls(folder, folder.read_config(), folder.read_evaluation())

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def seed(self) -> int:
        return self.config.seed

    @property
    def ablation(self) -> str:
        return self.config.ablation.name

    @property
    def budget(self) -> str:
        return self.config.budget.name

    @property
    def market(self) -> str:
        return market_label(self.config.market)

    @property
    def policies(self) -> list[str]:
        return list(self.evaluation.policies)

    @property
    def learned_policy(self) -> str | None:
        return next((p for p in LEARNED_POLICIES if p in self.evaluation.policies), None)

    def summaries(self, section: str = "policies") -> dict[str, dict[str, float | None]]:
        """Each policy's summary metrics, post-cost ('policies') or pre-cost ('pre_cost')."""
        if section not in ("policies", "pre_cost"):
            raise KeyError(f"section '{section}' is not 'policies' or 'pre_cost'")
        return getattr(self.evaluation, section)

    def flat_config(self) -> dict[str, Any]:
        """The config as {dotted.key: value}, the keys runs of one row may not differ in."""
        return {k: v for k, v in flatten(dataclasses.asdict(self.config)).items() if k not in POOLED_KEYS}

    def evaluation_market(self) -> tuple[MarketData, MarketData]:
        """The split the run was evaluated on, rebuilt from its config, and the market from its
        first bar to that split's end: the history a walk through the split starts from."""
        config = self.config.market
        market = load_market(config)
        split = split_market(market, config.split)[self.evaluation.split]
        stop = int(market.timestamps.get_loc(split.timestamps[-1])) + 1
        return market.slice_time(0, stop), split


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
        return {key: getattr(self.runs[0].evaluation, key) for key in SHARED_METADATA}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [f"{key} ({a.get(key, '<absent>')!r} vs {b.get(key, '<absent>')!r})"
            for key in sorted(set(a) | set(b)) if a.get(key, KeyError) != b.get(key, KeyError)]


def check_same_config(runs: Iterable[Run]) -> None:
    """Raise MixedConfigError naming two runs and the keys they differ in, if the runs differ
    in anything but the pooled keys, in their evaluation metadata, or repeat a seed."""
    runs = list(runs)
    first = runs[0]
    reference = first.flat_config()
    seen = {first.seed: first}
    for run in runs[1:]:
        differences = _differences(reference, run.flat_config())
        if differences:
            raise MixedConfigError(
                f"runs {first.path} and {run.path} would share one row (ablation={run.ablation}, "
                f"market={run.market}, budget={run.budget}) but their configs differ in "
                f"{'; '.join(differences)}: report them separately")
        metadata = _differences({k: getattr(first.evaluation, k) for k in SHARED_METADATA},
                                {k: getattr(run.evaluation, k) for k in SHARED_METADATA})
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
