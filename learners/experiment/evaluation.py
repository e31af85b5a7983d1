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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.fabric import Fabric
from omegaconf import OmegaConf

from envs.market_data import MarketData
from eval.backtest import BacktestResult, Policy, run_schedule, scale_costs
from eval.baselines import BaselineConfig, baseline_weights
from features.pipeline import build_features
from hierarchy.decision_log import json_ready
from learners.checkpoints import PhaseCheckpoints
from learners.curriculum import TrainedPolicies
from learners.phases import RunContext, flat_agent, flat_decide, validate_flat, validate_system
from learners.train_config import TrainConfig
from learners.workspace import Workspace, next_return_leak

TABLE_COLUMNS = ("ann_return", "ann_vol", "sharpe", "max_drawdown", "turnover", "costs")


def _baseline(ctx: RunContext, name: str, part: str, cost_factor: float) -> BacktestResult:
    ws = ctx.ws
    market, features = ws.window(part)
    market = scale_costs(market, cost_factor) if cost_factor != 1.0 else market
    config = BaselineConfig(rebalance_every=ws.config.hierarchy.meta_period)
    schedule = baseline_weights(name, market, config, np.random.default_rng(ws.config.seed), start=ws.warmup_bars)
    env_config = dataclasses.replace(ws.config.env, warmup_bars=ws.warmup_bars)
    return run_schedule(name, market, env_config, schedule, limits=ws.config.risk, **features)


def backtest(ctx: RunContext, trained: TrainedPolicies, policy: str, part: str, cost_factor: float = 1.0,
             decision_log: Path | None = None) -> BacktestResult:
    """One policy walked once through split `part`: "hierarchy" or "flat_ppo" (trained), or a
    baseline of `eval.baselines` (a decision log only for the hierarchy)."""
    if policy == "hierarchy" and trained.system is not None:
        return validate_system(ctx.ws, trained.system, part, decision_log, cost_factor)
    if policy == "flat_ppo" and trained.flat is not None:
        return validate_flat(ctx.ws, trained.flat, part, cost_factor)
    if policy in ("hierarchy", "flat_ppo"):
        raise KeyError(f"policy '{policy}' was not trained in {ctx.run_dir}")
    return _baseline(ctx, policy, part, cost_factor)


def policy_results(ctx: RunContext, trained: TrainedPolicies, part: str, cost_factor: float = 1.0,
                   decision_log: Path | None = None) -> list[BacktestResult]:
    """The trained policies and `evaluation.baselines` walked once through split `part`."""
    trained_names = [name for name, policy in (("hierarchy", trained.system), ("flat_ppo", trained.flat))
                     if policy is not None]
    return [backtest(ctx, trained, name, part, cost_factor, decision_log)
            for name in trained_names + list(ctx.config.evaluation.baselines)]


def write_json(path: Path, content: dict) -> None:
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


def evaluate(ctx: RunContext, trained: TrainedPolicies) -> dict:
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
        log = folder / "decisions.jsonl" if factor == 1.0 and cfg.evaluation.decision_log else None
        for result in policy_results(ctx, trained, part, factor, log):
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
        "leak_next_return": cfg.leak_next_return, **metrics,
        "training": {"wall_s": trained.wall_s, "env_steps": trained.env_steps, "world_size": ctx.fabric.world_size},
    }
    content = json_ready(content)
    write_json(folder / "metrics.json", content)
    return content


def results_table(metrics: dict) -> str:
    """The terminal table of post-cost results: one row per policy."""
    frame = pd.DataFrame(metrics["policies"]).T[list(TABLE_COLUMNS)]
    return frame.to_string(float_format="{:+.3f}".format)


def run_config(run_dir: Path) -> TrainConfig:
    """A run's resolved config (`.hydra/config.yaml`) as the typed schema (a key the schema no
    longer has fails naming it)."""
    path = run_dir / ".hydra" / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder: no {path}")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.load(path)))


def final_checkpoint(run_dir: Path) -> Path:
    """The best checkpoint of the run's last finished phase."""
    for phase in ("phase3", "phase2", "phase1"):
        checkpoints = PhaseCheckpoints(run_dir, phase)
        if checkpoints.done:
            return checkpoints.path("best")
    raise FileNotFoundError(f"{run_dir}: no finished phase (no phase*/checkpoints/done)")


def restore(checkpoint: Path, fabric: Fabric) -> tuple[RunContext, TrainedPolicies]:
    """The workspace of the run a checkpoint belongs to (`<run>/<phase>/checkpoints/<which>.ckpt`)
    and its policy (the hierarchy, or the flat agent) loaded from it."""
    run_dir = checkpoint.parents[2]
    config = dataclasses.replace(run_config(run_dir), resume=False, init_from="")
    ws = Workspace.build(config)
    ctx = RunContext(ws, fabric, run_dir, resume=False)
    state = torch.load(checkpoint, map_location=fabric.device, weights_only=True)
    if "agent" in state:
        flat = flat_agent(ws.env("train", 1, config.seed), config.hierarchy.specialist_hidden)
        flat.load_state_dict(state["agent"])
        return ctx, TrainedPolicies(None, flat)
    if "system" not in state:
        raise KeyError(f"{checkpoint} holds neither a hierarchy ('system') nor a flat agent ('agent')")
    system = ws.system(ws.env("train", 1, config.seed))
    system.load_state_dict(state["system"])
    return ctx, TrainedPolicies(system, None)


def portable_policy(ctx: RunContext, trained: TrainedPolicies,
                    fit_end: int) -> tuple[Policy, Callable[[MarketData], dict[str, np.ndarray]], int]:
    """The run's trained policy on another market of its universe (a crash path, say): an
    `eval.backtest.Policy`, the env arguments it needs on such a market (its features, computed
    with the run's settings, the regime HMM fitted on the market's first `fit_end` bars with the
    run's number of regimes, so the networks see inputs of the sizes they were trained on), and
    the warm-up bars its walks need."""
    config = ctx.config
    features_config = dataclasses.replace(config.features, cache=False)
    states = ctx.ws.features.regime_probs.shape[1]
    if config.features.regime:
        features_config = dataclasses.replace(features_config, regimes=dataclasses.replace(
            config.features.regimes, min_states=states, max_states=states))

    built: dict[int, tuple[MarketData, dict[str, np.ndarray]]] = {}     # per market: every policy walks it

    def env_kwargs(market: MarketData) -> dict[str, np.ndarray]:
        if id(market) not in built:
            features = build_features(market, features_config, train_end=fit_end)
            instrument = features.instrument_features
            if config.leak_next_return:
                instrument = np.concatenate([instrument, next_return_leak(market, config.env.execution)], axis=-1)
            built[id(market)] = market, {"instrument_features": instrument, "regime_probs": features.regime_probs,
                                         "global_features": features.global_features}
        return built[id(market)][1]

    system = trained.system

    def policy(market: MarketData, first_bar: int) -> Callable:
        if system is None:
            return flat_decide(trained.flat, config.hierarchy.max_leverage)
        system.eval()
        system.bind(1)
        return lambda env: system.decide(env, deterministic=True).target_weights

    return policy, env_kwargs, ctx.ws.warmup_bars
