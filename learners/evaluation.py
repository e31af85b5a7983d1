"""The evaluation after training: the trained policy (its best validation checkpoint) and the
baselines walked once through the evaluation split, post-cost and pre-cost, behind the same
risk overlay and costs, written to the run's `eval/` folder:

    metrics.json                        headline metrics per policy (post- and pre-cost) and the run's facts
    <policy>_{returns,weights,costs}.parquet, <policy>_precost_...   (eval.backtest.BacktestResult.write)
    decisions.jsonl                     the hierarchy's decision log (post-cost)
    regimes.parquet                     the detected regime probabilities on the split

Baselines rebalance on the meta-controller's calendar, from the split's first bar.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from eval.backtest import BacktestResult, run_schedule, scale_costs
from eval.baselines import BaselineConfig, baseline_weights
from hierarchy.agents import FlatAgent
from hierarchy.decision_log import json_ready
from hierarchy.system import HierarchicalSystem
from learners.phases import RunContext, validate_flat, validate_system

TABLE_COLUMNS = ("ann_return", "ann_vol", "sharpe", "max_drawdown", "turnover", "costs")


def _baseline(ctx: RunContext, name: str, cost_factor: float) -> BacktestResult:
    ws = ctx.ws
    market, features = ws.window(ws.config.evaluation.split)
    market = scale_costs(market, cost_factor) if cost_factor != 1.0 else market
    config = BaselineConfig(rebalance_every=ws.config.hierarchy.meta_period)
    schedule = baseline_weights(name, market, config, np.random.default_rng(ws.config.seed), start=ws.warmup_bars)
    env_config = dataclasses.replace(ws.config.env, warmup_bars=ws.warmup_bars)
    return run_schedule(name, market, env_config, schedule, limits=ws.config.risk, **features)


def _write_json(path: Path, content: dict) -> None:
    """Atomically, as strict JSON."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(content, indent=2, allow_nan=False))
    os.replace(tmp, path)


def regime_frame(ctx: RunContext, part: str) -> pd.DataFrame:
    """The detected regime probabilities on split `part`, indexed by timestamp."""
    ws = ctx.ws
    start = ws.start(part)
    rows = slice(start, start + ws.splits[part].n_bars)
    probs = ws.features.regime_probs[rows]
    return pd.DataFrame(probs, index=pd.Index(ws.market.timestamps[rows], name="timestamp"),
                        columns=[f"regime_{k}" for k in range(probs.shape[1])])


def evaluate(ctx: RunContext, system: HierarchicalSystem | None, flat: FlatAgent | None,
             training: dict) -> dict:
    """Backtest the policies and baselines on the evaluation split and write `eval/` (rank 0);
    returns what metrics.json holds (NaN as None)."""
    cfg, ws = ctx.config, ctx.ws
    part = cfg.evaluation.split
    folder = ctx.run_dir / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    factors = (1.0, 0.0) if cfg.evaluation.pre_cost else (1.0,)
    metrics: dict[str, dict] = {"policies": {}, "pre_cost": {}}
    for factor in factors:
        suffix, key = ("", "policies") if factor == 1.0 else ("_precost", "pre_cost")
        results = []
        if system is not None:
            log = folder / "decisions.jsonl" if factor == 1.0 and cfg.evaluation.decision_log else None
            results.append(validate_system(ws, system, part, decision_log=log, cost_factor=factor))
        if flat is not None:
            results.append(validate_flat(ws, flat, part, cost_factor=factor))
        results += [_baseline(ctx, name, factor) for name in cfg.evaluation.baselines]
        for result in results:
            dataclasses.replace(result, name=result.name + suffix).write(folder, ws.market.symbols)
            metrics[key][result.name] = result.summary()
    regime_frame(ctx, part).to_parquet(folder / ".regimes.parquet.tmp")
    os.replace(folder / ".regimes.parquet.tmp", folder / "regimes.parquet")
    content = {
        "split": part, "market": ws.market.name, "periods_per_year": ws.market.bars_per_year,
        "seed": cfg.seed, "ablation": cfg.ablation.name, "budget": cfg.budget.name,
        "symbols": list(ws.market.symbols),
        "domains": {d: list(ws.market.instruments_of(d)) for d in ws.market.domain_names},
        "first_bar": str(ws.splits[part].timestamps[0]), "last_bar": str(ws.splits[part].timestamps[-1]),
        "leak_next_return": cfg.leak_next_return, **metrics, "training": training,
    }
    content = json_ready(content)
    _write_json(folder / "metrics.json", content)
    return content


def results_table(metrics: dict) -> str:
    """The terminal table of post-cost results: one row per policy."""
    frame = pd.DataFrame(metrics["policies"]).T[list(TABLE_COLUMNS)]
    return frame.to_string(float_format="{:+.3f}".format)
