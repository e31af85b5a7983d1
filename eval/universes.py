"""Evaluation with power: a run's policies and baselines walked on K fresh test universes.

One three-year test split gives a Sharpe ratio a standard error of about 0.58, so no comparison
on it can separate two policies. A synthetic market can be drawn again. A test universe is the
run's generator with all its parameters and a new market seed (`universe_seeds`), on the same
calendar; its env features are computed causally with the run's settings and the regime HMM
fitted on the run's own training bars (`Workspace.universe_features`), and every policy walks
the rows of the evaluation split (with the warm-up history before them) exactly as it walks the
run's market. The universes' seeds derive from the market's seed alone, so every run of a
market (any training seed, any ablation) meets the same K universes: comparisons are paired by
universe, and the statistics cross universes with training seeds (`eval.power`).

A baseline's walk on a universe does not depend on the trained policy, so it is kept in the data
lake (`walks/`, keyed by everything it depends on) and a sweep computes it once per universe.

    python -m eval.universes runs/<sweep> [--count 16] [--extra oracle_cost_aware] [--jobs 2]

walks the finished runs under a folder that have no universe walks yet (trained before
`evaluation.test_universes`, or with it 0) through the test universes, each at its final policy
with the baselines its evaluation walked (and `--extra` ones), and writes their
`eval/universes.parquet`; nothing else in the runs changes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from envs.lake import DataLake, content_hash
from envs.market_data import MarketData
from envs.synthetic import generate
from eval.backtest import Window, tuned_oracle, walk_window
from eval.oracle import ORACLE_COST_AWARE
from eval.runs import find_runs
from learners.run.folder import RunFolder, write_parquet
from learners.run.restore import LEARNED_POLICIES, Policies, restore
from learners.run.workspace import Workspace
from storage.atomic import write_json

UNIVERSE_STREAM = 1515          # spawn key: keeps the universes' seeds apart from other seed streams
SUMMARY_COLUMNS = ("sharpe", "ann_return", "ann_vol", "max_drawdown", "turnover", "costs")
SCHEMA_VERSION = 1              # of a cached walk: bump when a walk's numbers change for the same inputs


def universe_seeds(market_seed: int, count: int) -> list[int]:
    """The market seeds of `count` test universes of a market generated with `market_seed`."""
    return [int(s) for s in np.random.SeedSequence([market_seed, UNIVERSE_STREAM]).generate_state(count)]


def universe_market(ws: Workspace, seed: int) -> MarketData:
    """The run's synthetic market drawn again with market seed `seed`, on the run's calendar."""
    config = ws.config.market
    if config.source != "synthetic":
        raise ValueError(f"evaluation.test_universes needs a synthetic market; market.source is "
                         f"'{config.source}' (a real market keeps its one history: set test_universes=0)")
    market = generate(dataclasses.replace(config.synthetic, seed=seed), config.costs)
    if not market.timestamps.equals(ws.market.timestamps):
        raise ValueError(f"test universe of seed {seed} has a calendar different from the run's market")
    return market


def _walk_row(ws: Workspace, policies: Policies, name: str, window: Window) -> dict:
    """One walk's summary, the bars walked and whether the book was ruined before the end."""
    result = walk_window(ws, policies, name, window)
    summary = result.summary()
    return {**{c: summary[c] for c in SUMMARY_COLUMNS}, "bars": len(result.returns), "ruined": result.ruined}


def _cached_baseline_row(ws: Workspace, policies: Policies, name: str, window: Window, seed: int,
                         rows: slice) -> dict:
    """`_walk_row` of baseline `name` from the data lake, computed on a miss. The key holds every
    input of the walk: the universe (market config and seed, rows), the baseline and its
    calendar, the env settings, the risk limits, the run's seed (the random baseline's) and the
    cost-aware oracle's tuned parameters."""
    config = ws.config
    tuned = tuned_oracle(ws).params if name == ORACLE_COST_AWARE else None      # what its tuning chose
    key = content_hash(SCHEMA_VERSION, config.market.synthetic, config.market.costs, seed, rows.start, rows.stop,
                       name, config.hierarchy.meta_period, ws.settings.eval_env, config.risk, config.seed, tuned)
    computed: list[dict] = []

    def build(folder: Path) -> None:
        computed.append(_walk_row(ws, policies, name, window))
        write_json(folder / "walk.json", computed[0])

    folder = DataLake(Path(config.market.lake_dir)).get_or_build("walks", f"{window[0].name}-{name}", key, build)
    return computed[0] if computed else json.loads((folder / "walk.json").read_text())


def walk_universes(ws: Workspace, policies: Policies, names: list[str], part: str, count: int) -> pd.DataFrame:
    """Every policy of `names` (learned ones and baselines) walked once through split `part` of
    each of `count` test universes, post-cost: one row per (universe, policy) with the walk's
    summary, the bars walked and whether the book was ruined before the split's end."""
    rows = ws.rows(part)
    records = []
    for k, seed in enumerate(universe_seeds(ws.config.market.synthetic.seed, count)):
        market = universe_market(ws, seed)
        features = ws.universe_features(market)
        window = (market.slice_time(rows.start, rows.stop), {n: a[rows] for n, a in features.items()})
        for name in names:
            row = (_walk_row(ws, policies, name, window) if name in LEARNED_POLICIES
                   else _cached_baseline_row(ws, policies, name, window, seed, rows))
            records.append({"universe": k, "market_seed": seed, "policy": name, **row})
    return pd.DataFrame.from_records(records)


# ---------------------------------------------------------------------- python -m eval.universes
def add_universes(path: Path, count: int, extra: tuple[str, ...] = ()) -> Path:
    """Walk a finished run's final policy and the baselines of its evaluation (and `extra`)
    through `count` test universes of its evaluation split; write `eval/universes.parquet`."""
    torch.set_num_threads(1)
    folder = RunFolder(path)
    record = folder.read_evaluation()
    ws, policies = restore(folder.final_checkpoint())
    baselines = [p for p in (*record.policies, *extra) if p not in LEARNED_POLICIES]
    walks = walk_universes(ws, policies, policies.names + list(dict.fromkeys(baselines)), record.split, count)
    write_parquet(folder.universes_file, walks)
    return folder.universes_file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Walk finished runs through fresh test universes.")
    parser.add_argument("runs", type=Path, help="a folder of finished runs (searched recursively)")
    parser.add_argument("--count", type=int, default=16, help="test universes per run")
    parser.add_argument("--extra", nargs="*", default=[], help="baselines to walk beside the run's own")
    parser.add_argument("--jobs", type=int, default=1, help="runs walked at a time")
    parser.add_argument("--force", action="store_true", help="walk runs that have universe walks again")
    args = parser.parse_args(argv)
    todo = [run.path for run in find_runs(args.runs) if args.force or not run.folder.universes_file.exists()]
    print(f"{len(todo)} runs under {args.runs} to walk through {args.count} test universes")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for written in pool.map(add_universes, todo, [args.count] * len(todo), [tuple(args.extra)] * len(todo)):
            print(f"wrote {written}", flush=True)


if __name__ == "__main__":
    main()
