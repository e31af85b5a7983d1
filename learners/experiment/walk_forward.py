"""Walk-forward retraining: the curriculum retrained on each fold's in-sample window and scored on
the out-of-sample window after it, the windows stitched into one out-of-sample record.

Folds come from `eval.splits.walk_forward_folds` over the bars after the feature warm-up (so
every in-sample window has its warm-up history before it). In each fold the in-sample window is
split into training bars and, after an embargo, validation bars that select the checkpoint
(never the out-of-sample bars); `purge` bars separate it from the out-of-sample window, whose
walk starts with the history before it. The fitted features (the HMM) see the fold's training
bars and earlier only. Each fold trains in `walk_forward/fold_<k>/` of the run folder at
`steps_scale` of the budget, and the run writes `eval/walk_forward.json` (per fold: its windows
and each policy's metrics; and the metrics of the stitched out-of-sample returns) and
`eval/walk_forward_returns.parquet` (the stitched out-of-sample returns, one column per policy).

Every window's walk starts flat and its first decision fills at its second bar, so a stitched
window contributes one return fewer than it has bars.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from envs.market_data import DataSplits, MarketData
from eval import metrics
from eval.backtest import walk_policies
from eval.splits import Fold, walk_forward_folds
from learners.experiment.curriculum import train_policies
from learners.experiment.loop import RunContext
from learners.run.config import TrainConfig, WalkForwardConfig
from learners.run.workspace import Workspace
from storage.atomic import json_ready


def fold_splits(market: MarketData, fold: Fold, validation_fraction: float, embargo: int) -> DataSplits:
    """Train / validation (the in-sample window's tail, after `embargo` bars) / test (the fold's
    out-of-sample window) as slices of `market`."""
    start, stop = int(fold.train[0]), int(fold.train[-1]) + 1
    validation_bars = int(round((stop - start) * validation_fraction))
    train_stop = stop - validation_bars - embargo
    if validation_bars < 2 or train_stop - start < 2:
        raise ValueError(f"walk-forward fold [{start}, {stop}): {stop - start} in-sample bars leave "
                         f"{train_stop - start} training and {validation_bars} validation bars; raise "
                         f"evaluation.walk_forward.in_sample or change validation_fraction")
    return DataSplits(train=market.slice_time(start, train_stop),
                      validation=market.slice_time(stop - validation_bars, stop),
                      test=market.slice_time(int(fold.test[0]), int(fold.test[-1]) + 1))


def folds_of(n_bars: int, warmup: int, config: WalkForwardConfig) -> list[Fold]:
    """The configured folds in market bar positions, from the first bar after the warm-up."""
    folds = walk_forward_folds(n_bars - warmup, config.in_sample, config.out_of_sample, config.step,
                               config.anchored, config.purge)
    folds = [Fold(train=fold.train + warmup, test=fold.test + warmup) for fold in folds]
    return folds[-config.folds:] if config.folds else folds


def fold_config(config: TrainConfig) -> TrainConfig:
    """The run's config with every phase's env steps scaled by `walk_forward.steps_scale`."""
    scale = config.evaluation.walk_forward.steps_scale
    budget = config.budget
    scaled = dataclasses.replace(budget, **{name: max(1, int(getattr(budget, name) * scale)) for name in
                                            ("offline_steps", "cql_steps", "phase1_steps", "phase2_steps",
                                             "phase3_steps")})
    return dataclasses.replace(config, budget=scaled, init_from="")


def run_walk_forward(ctx: RunContext) -> dict:
    """Retrain and score every fold (see module docstring); returns what walk_forward.json holds."""
    config, market = ctx.config, ctx.ws.market
    walk = config.evaluation.walk_forward
    folds = folds_of(market.n_bars, ctx.ws.warmup_bars, walk)
    retrain = fold_config(config)
    records, stitched = [], {}
    for k, fold in enumerate(folds):
        splits = fold_splits(market, fold, walk.validation_fraction, config.market.split.embargo_bars)
        fold_ws = Workspace.for_splits(retrain, market, splits, ctx.fabric.world_size)
        fold_ctx = RunContext(fold_ws, ctx.fabric, ctx.folder.fold(k), ctx.resume)
        if ctx.fabric.global_rank == 0:
            fold_ctx.folder.write_settings(fold_ws.settings)
        ctx.fabric.print(f"walk-forward fold {k + 1}/{len(folds)}: train {splits.train.timestamps[0].date()} .. "
                         f"{splits.train.timestamps[-1].date()}, test {splits.test.timestamps[0].date()} .. "
                         f"{splits.test.timestamps[-1].date()}")
        policies, _ = train_policies(fold_ctx)
        if ctx.fabric.global_rank != 0:
            continue
        results = walk_policies(fold_ws, policies, list(retrain.evaluation.baselines), "test")
        test, train = splits.test.timestamps, splits.train.timestamps
        records.append({"test_start": str(test[0].date()), "test_end": str(test[-1].date()),
                        "train_start": str(train[0].date()), "train_end": str(train[-1].date()),
                        "policies": {r.name: r.summary() for r in results}})
        for result in results:
            stitched.setdefault(result.name, []).append(pd.Series(result.returns, index=result.timestamps))
    if ctx.fabric.global_rank != 0:
        return {}
    # where windows overlap (step < out_of_sample) each bar is scored by the earliest fold
    returns = pd.DataFrame({name: (series := pd.concat(parts))[~series.index.duplicated()]
                            for name, parts in stitched.items()})
    summary = metrics.summary(returns.to_numpy(), periods_per_year=market.bars_per_year)
    content = {"config": dataclasses.asdict(walk), "folds": records,
               "stitched": {name: {key: float(value[j]) for key, value in summary.items()}
                            for j, name in enumerate(returns.columns)}}
    ctx.folder.write_walk_forward(content, returns)
    return json_ready(content)
