"""Backtests: a policy or a weight schedule walked once through a split in the simulator, a
run's own policies and baselines walked through a split of its workspace, and the writer of a
run's evaluation.

Every strategy runs in the same `VecMarketEnv` with the same costs (one env, `episode_length=0`:
the whole split from `warmup_bars`, deterministically). Pre-cost and cost-stress runs scale the
trading costs (spread, commission, slippage, impact and the financing spread over the short
rate); funding leverage at the short rate itself is a return, not a trading cost, and stays.

    python -m eval.backtest ckpt=<run folder or .ckpt> [split=test] [policy=learned|<baseline>] [out=<folder>]

replays a run's trained policy (its last finished phase's best checkpoint, or the checkpoint
given) or any baseline once through a split of the run's market, post-cost and pre-cost, and
writes the daily returns, weights, costs and contributions as Parquet, the hierarchy's decision
log and summary_<policy>.json to `out` (default `<run>/backtest/<split>/`).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from envs.config import EnvConfig
from envs.costs import InstrumentCosts
from envs.market_data import MarketData
from envs.state import COST_KINDS
from envs.vec_env import VecMarketEnv
from eval import metrics
from eval.baselines import BaselineConfig, Decide, Policy, baseline_weights
from eval.oracle import EVALUATED_BASELINES, ORACLE_COST_AWARE, OracleGrid, OracleTuning, cost_aware_oracle
from hierarchy.agents import FlatAgent, flat_decide
from hierarchy.decision_log import DecisionLog
from hierarchy.system import HierarchicalSystem
from learners.run.config import SPLITS, TrainConfig
from learners.run.folder import PRE_COST, EvaluationRecord, RunFolder, TrainingRecord, write_frames
from learners.run.restore import LEARNED_POLICIES, Policies, checkpoint_policy, restore
from learners.run.workspace import Workspace
from risk.env_hook import risk_env
from risk.limits import RiskLimits
from storage.atomic import json_ready, write_json

# nominal costs times these: pre-cost, nominal, double and triple (the cost stress test)
COST_FACTORS: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0)
TRADING_COSTS = ("half_spread_bps", "half_spread_pips", "commission_bps", "slippage_vol_coef",
                 "impact_coef", "financing_spread_bps")


def scale_costs(market: MarketData, factor: float) -> MarketData:
    """The market with every trading cost multiplied by `factor` (0: pre-cost; 2, 3: stress)."""
    scaled = {k: v * factor if k in TRADING_COSTS else v for k, v in market.costs.as_dict().items()}
    return dataclasses.replace(market, costs=InstrumentCosts(**scaled))


@dataclass
class BacktestResult:
    """One strategy over one split, bar by bar from the first decision's fill."""

    name: str
    timestamps: pd.DatetimeIndex     # (T,) the bar each row ends at
    returns: np.ndarray              # (T,) simple return of equity over the bar
    weights: np.ndarray              # (T, N) executed weights right after the fill
    costs: np.ndarray                # (T, 6) money by COST_KINDS
    contributions: np.ndarray        # (T, N) (PnL - costs) of each instrument / equity before the bar
    turnover: np.ndarray             # (T,) sum |trade| / equity at the fill
    equity: np.ndarray               # (T,)
    initial_equity: float
    periods_per_year: float
    ruined: bool = False             # the book was ruined (equity <= 0): the walk ended at its last row

    def summary(self, risk_free: float = 0.0) -> dict[str, float]:
        """Headline metrics (eval.metrics conventions); turnover and costs per year, costs as a
        fraction of initial equity; the bars walked and, for a ruined walk, the bar it ended at
        (its row in the walk, NaN when the walk reached the split's end): every table marks it."""
        stats = {k: float(v[0]) for k, v in metrics.summary(self.returns, risk_free, self.periods_per_year).items()}
        years = len(self.returns) / self.periods_per_year
        stats["turnover"] = float(self.turnover.sum() / years)
        stats["costs"] = float(self.costs.sum() / self.initial_equity / years)
        stats["bars"] = float(len(self.returns))
        stats["ruin_bar"] = float(len(self.returns) - 1) if self.ruined else float("nan")
        return stats

    def frames(self, symbols: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """Daily returns, weights, costs and each instrument's contribution to the return, as
        frames indexed by timestamp."""
        index = pd.Index(self.timestamps, name="timestamp")
        return {
            "returns": pd.DataFrame({"return": self.returns, "equity": self.equity,
                                     "turnover": self.turnover}, index=index),
            "weights": pd.DataFrame(self.weights, index=index, columns=list(symbols)),
            "costs": pd.DataFrame(self.costs, index=index, columns=list(COST_KINDS)),
            "contributions": pd.DataFrame(self.contributions, index=index, columns=list(symbols)),
        }


def run(name: str, market: MarketData, config: EnvConfig, decide: Decide,
        after_step: Callable[[VecMarketEnv, dict], None] | None = None,
        limits: RiskLimits | None = None, **env_kwargs) -> BacktestResult:
    """Walk `market` once, behind the risk overlay when `limits` are given: at each bar
    `decide(env)` returns target weights (1, N) (NaN holds); `after_step(env, info)` sees every
    step (decision logs). `env_kwargs` pass feature arrays to the env."""
    config = dataclasses.replace(config, episode_length=0)
    env = risk_env(market, config, limits, num_envs=1, seed=0, **env_kwargs)
    env.reset(seed=0)
    rows: dict[str, list] = {k: [] for k in ("bar", "equity", "weights", "costs", "contributions", "turnover")}
    previous = config.initial_equity
    returns = []
    while True:
        targets = decide(env)
        bar = int(env.state.bar[0]) + 1
        _, _, terminated, truncated, info = env.step(targets)
        if after_step is not None:
            after_step(env, info)
        equity = float(info["equity"][0])
        returns.append(equity / previous - 1.0)
        previous = equity
        rows["bar"].append(bar)
        rows["equity"].append(equity)
        rows["weights"].append(info["executed_weights"][0].copy())
        rows["costs"].append(info["costs"][0].copy())
        rows["contributions"].append(info["instrument_reward"][0].copy())
        rows["turnover"].append(float(info["turnover"][0]))
        if terminated[0] or truncated[0]:
            break
    return BacktestResult(name, market.timestamps[np.asarray(rows["bar"])], np.asarray(returns),
                          np.asarray(rows["weights"]), np.asarray(rows["costs"]),
                          np.asarray(rows["contributions"]), np.asarray(rows["turnover"]), np.asarray(rows["equity"]),
                          config.initial_equity, market.bars_per_year, bool(terminated[0]))


def run_schedule(name: str, market: MarketData, config: EnvConfig, schedule: np.ndarray,
                 limits: RiskLimits | None = None, **env_kwargs) -> BacktestResult:
    """A (T, N) target-weight schedule (NaN: hold), as from `eval.baselines.baseline_weights`."""
    if schedule.shape != (market.n_bars, market.n_instruments):
        raise ValueError(f"schedule of '{name}' has shape {schedule.shape}, expected "
                         f"{(market.n_bars, market.n_instruments)}")
    return run(name, market, config, lambda env: schedule[env.state.bar][:1], None, limits, **env_kwargs)


def run_system(name: str, market: MarketData, config: EnvConfig, system: HierarchicalSystem,
               decision_log: str | Path | None = None, regime_probs: np.ndarray | None = None,
               limits: RiskLimits | None = None, **env_kwargs) -> BacktestResult:
    """The hierarchy, deterministic (policy means, no dropout), walked once through `market`;
    with `decision_log`, one JSON line per bar: the audit trail of every trade."""
    system.eval()
    system.bind(1)
    pending: dict = {}
    with DecisionLog(decision_log) if decision_log is not None else nullcontext() as log:

        def decide(env: VecMarketEnv) -> np.ndarray:
            decision = system.decide(env, deterministic=True)
            if log is not None:
                bar = int(env.state.bar[0])
                pending.update(
                    timestamp=str(market.timestamps[bar]), bar=bar,
                    regime_probs=None if regime_probs is None else regime_probs[bar],
                    allocation=dict(zip(system.domain_names, decision.allocation[0])),
                    risk_appetite=decision.appetite[0], meta_acted=bool(decision.meta_acted[0]),
                    messages=system.messages(decision, env, 0),
                    signals=dict(zip(market.symbols, decision.signals[0])),
                    target_weights=dict(zip(market.symbols, decision.target_weights[0])))
            return decision.target_weights

        def after_step(env: VecMarketEnv, info: dict) -> None:
            if log is not None:
                log.write({**pending,
                           "executed_weights": dict(zip(market.symbols, info["executed_weights"][0])),
                           "limits_bound": getattr(env.overlay, "last_report", None),
                           "equity": info["equity"][0], "costs": info["costs"][0].sum(),
                           "liquidated": bool(info["liquidated"][0])})

        return run(name, market, config, decide, after_step, limits, regime_probs=regime_probs, **env_kwargs)


def window_returns(market: MarketData, config: EnvConfig, decide: Decide, windows: int,
                   limits: RiskLimits | None = None, **env_kwargs) -> np.ndarray:
    """(windows, L) bar returns of `decide` on the decision bars of `market` (from
    `config.warmup_bars`) cut into `windows` consecutive windows of L bars, walked side by side
    as one env each: every window starts flat at its first bar with the bars before it as
    history. A ruined window stays out of the market (zero returns) after its ruin."""
    config = dataclasses.replace(config, episode_length=0)
    length = (market.n_bars - 1 - config.warmup_bars) // windows
    if length < 2:
        raise ValueError(f"market '{market.name}': {market.n_bars} bars leave no {windows} windows of 2 bars "
                         f"after a warm-up of {config.warmup_bars}")
    env = risk_env(market, config, limits, num_envs=windows, seed=0, **env_kwargs)
    starts = config.warmup_bars + length * np.arange(windows)
    env.reset(seed=0, options={"windows": (starts, starts + length)})
    returns, previous, alive = np.zeros((windows, length)), env.equity.copy(), np.ones(windows, dtype=bool)
    for k in range(length):
        _, _, terminated, _, info = env.step(decide(env))
        returns[alive, k] = info["equity"][alive] / previous[alive] - 1.0
        previous, alive = info["equity"], alive & ~terminated
    return returns


def run_policy(name: str, market: MarketData, config: EnvConfig, policy: Policy,
               limits: RiskLimits | None = None, **env_kwargs) -> BacktestResult:
    """`policy` planned for `market` from `config.warmup_bars` on, then walked once."""
    plan = policy(market, config.warmup_bars)
    if isinstance(plan, np.ndarray):
        return run_schedule(name, market, config, plan, limits, **env_kwargs)
    return run(name, market, config, plan, None, limits, **env_kwargs)


def cost_stress(name: str, market: MarketData, config: EnvConfig, schedule: np.ndarray,
                factors: tuple[float, ...] = COST_FACTORS, limits: RiskLimits | None = None,
                **env_kwargs) -> dict[float, BacktestResult]:
    """The schedule walked once per cost factor (0: pre-cost, 1: nominal, 2 and 3: stress)."""
    return {factor: run_schedule(name, scale_costs(market, factor), config, schedule, limits, **env_kwargs)
            for factor in factors}


def replay_schedule(weights: pd.DataFrame, turnover: pd.Series, market: MarketData) -> tuple[np.ndarray, int]:
    """The (T, N) schedule that trades a recorded backtest's fills again on `market`, and its
    first decision bar: the executed weights of each row that traded become the targets of the
    decision bar before it; NaN elsewhere holds. With nominal costs and no overlay it repeats the
    recorded trades; with scaled costs it is the cost stress of those same trades."""
    if tuple(weights.columns) != market.symbols:
        raise ValueError(f"recorded weights have columns {tuple(weights.columns)}, market '{market.name}' "
                         f"has {market.symbols}")
    rows = market.timestamps.get_indexer(weights.index)
    if (rows < 1).any():
        bad = weights.index[int(np.argmax(rows < 1))]
        raise ValueError(f"recorded row {bad} is not a bar after the first of market '{market.name}' "
                         f"({market.timestamps[0]} .. {market.timestamps[-1]})")
    schedule = np.full((market.n_bars, market.n_instruments), np.nan)
    traded = turnover.reindex(weights.index).to_numpy() > 0
    schedule[rows[traded] - 1] = weights.to_numpy()[traded]
    return schedule, int(rows[0] - 1)


# ---------------------------------------------------------------------- a run's policies
Window = tuple[MarketData, dict[str, np.ndarray]]
"""The market rows of a walk and their env feature arrays (`Workspace.window`)."""


def split_window(ws: Workspace, part: str, cost_factor: float = 1.0) -> Window:
    """The market rows and env features of a walk through split `part`, trading costs scaled."""
    market, features = ws.window(part)
    return (scale_costs(market, cost_factor) if cost_factor != 1.0 else market), features


def walk_hierarchy(ws: Workspace, system: HierarchicalSystem, window: Window,
                   decision_log: Path | None = None) -> BacktestResult:
    """The deterministic hierarchy walked once through `window` behind the run's risk overlay;
    the system is left in training mode."""
    market, features = window
    features = dict(features)
    regime_probs = features.pop("regime_probs")
    result = run_system("hierarchy", market, ws.settings.eval_env, system, decision_log=decision_log,
                        regime_probs=regime_probs, limits=ws.config.risk, **features)
    system.train()
    return result


def walk_flat(ws: Workspace, agent: FlatAgent, window: Window) -> BacktestResult:
    """The deterministic flat policy (latent means) walked once through `window`."""
    market, features = window
    decide = flat_decide(agent, ws.config.hierarchy.max_leverage)
    return run("flat_ppo", market, ws.settings.eval_env, decide, limits=ws.config.risk, **features)


def walk_baseline(ws: Workspace, name: str, window: Window) -> BacktestResult:
    """Baseline `name` of `eval.baselines`, rebalancing on the meta-controller's calendar from
    the window's first decision bar, walked once through `window`."""
    market, features = window
    config = BaselineConfig(rebalance_every=ws.config.hierarchy.meta_period)
    schedule = baseline_weights(name, market, config, np.random.default_rng(ws.config.seed), start=ws.warmup_bars)
    return run_schedule(name, market, ws.settings.eval_env, schedule, limits=ws.config.risk, **features)


def validation_sharpe(ws: Workspace, policies: Policies, part: str = "validation") -> float:
    """The Sharpe ratio that selects checkpoints: the run's learned policy (the hierarchy, else
    the flat one), deterministic, on split `part`, walked as `curriculum.validation_windows`
    windows side by side (`window_returns`: as many as the split holds rollouts' lengths of bars,
    at least one), or once through the whole split with one window. With
    `curriculum.validation_universe_years` on a synthetic market, the validation part is the
    workspace's fresh validation universe (`Workspace.validation_universe`), in
    `validation_windows` windows."""
    curriculum = ws.config.curriculum
    fresh = ws.validation_universe if part == "validation" else None
    if fresh is not None:
        (market, features), windows = fresh, curriculum.validation_windows
    else:
        windows = min(curriculum.validation_windows, ws.splits[part].n_bars // curriculum.rollout_bars)
        if windows <= 1:
            return walk_policy(ws, policies, policies.names[0], part).summary()["sharpe"]
        market, features = ws.window(part)
    system = policies.system
    if system is not None:
        system.eval()
        system.bind(windows)
        decide = lambda env: system.decide(env, deterministic=True).target_weights
    else:
        decide = flat_decide(policies.flat, ws.config.hierarchy.max_leverage)
    returns = window_returns(market, ws.settings.eval_env, decide, windows, ws.config.risk, **features)
    if system is not None:
        system.train()
    return float(metrics.sharpe_ratio(returns.reshape(-1), 0.0, market.bars_per_year)[0])


def tune_cost_aware_oracle(validation: MarketData, env_config: EnvConfig, limits: RiskLimits | None,
                           grid: OracleGrid | None = None, **env_kwargs) -> OracleTuning:
    """Walk every configuration of `grid` once through `validation` (the validation split's
    window: its warm-up rows, then its bars from `env_config.warmup_bars`) with the market's
    costs behind the risk overlay of `limits`, and keep the best Sharpe ratio. Only the market
    given is walked: pass the validation window, never the test split. `env_kwargs` pass
    feature arrays to the env (they move the overlay's covariance, not the oracle)."""
    grid = grid or OracleGrid()
    started = time.perf_counter()
    rows = []
    for params in grid.configurations():
        summary = run_policy(ORACLE_COST_AWARE, validation, env_config, cost_aware_oracle(params), limits,
                             **env_kwargs).summary()
        rows.append({**asdict(params), **{k: summary[k] for k in ("sharpe", "turnover", "costs")}})
    results = pd.DataFrame(rows)
    best = int(np.argmax(np.nan_to_num(results["sharpe"].to_numpy(), nan=-np.inf)))
    return OracleTuning(grid.configurations()[best], results, time.perf_counter() - started)


@functools.lru_cache(maxsize=1)
def tuned_oracle(ws: Workspace) -> OracleTuning:
    """The cost-aware oracle tuned on the workspace's validation window, once per workspace."""
    validation, features = ws.window("validation")
    return tune_cost_aware_oracle(validation, ws.settings.eval_env, ws.config.risk, **features)


def walk_window(ws: Workspace, policies: Policies, name: str, window: Window,
                decision_log: Path | None = None) -> BacktestResult:
    """One policy walked once through `window` (a split of the run's market, or of a fresh
    universe): "hierarchy" or "flat_ppo" (learned), or a baseline of `eval.baselines` (a
    decision log only for the hierarchy)."""
    if name == "hierarchy" and policies.system is not None:
        return walk_hierarchy(ws, policies.system, window, decision_log)
    if name == "flat_ppo" and policies.flat is not None:
        return walk_flat(ws, policies.flat, window)
    if name in LEARNED_POLICIES:
        raise KeyError(f"policy '{name}' is not one of the run's learned policies {policies.names}")
    if name == ORACLE_COST_AWARE:
        market, features = window
        return run_policy(name, market, ws.settings.eval_env, cost_aware_oracle(tuned_oracle(ws).params),
                          ws.config.risk, **features)
    return walk_baseline(ws, name, window)


def walk_policy(ws: Workspace, policies: Policies, name: str, part: str, cost_factor: float = 1.0,
                decision_log: Path | None = None) -> BacktestResult:
    """One policy walked once through split `part` of the run's market (see `walk_window`)."""
    return walk_window(ws, policies, name, split_window(ws, part, cost_factor), decision_log)


def walk_policies(ws: Workspace, policies: Policies, baselines: list[str], part: str, cost_factor: float = 1.0,
                  decision_log: Path | None = None) -> list[BacktestResult]:
    """The learned policies, then `baselines`, each walked once through split `part`."""
    return [walk_policy(ws, policies, name, part, cost_factor, decision_log) for name in policies.names + baselines]


def learned_policy(ws: Workspace, policies: Policies) -> Policy:
    """The run's learned policy (the hierarchy, else the flat one), deterministic, as a `Policy`
    for any market of its universe (a crash path, say; its features from `ws.features_for`)."""
    system = policies.system

    def policy(market: MarketData, first_bar: int) -> Decide:
        if system is None:
            return flat_decide(policies.flat, ws.config.hierarchy.max_leverage)
        system.eval()
        system.bind(1)
        return lambda env: system.decide(env, deterministic=True).target_weights

    return policy


def write_evaluation(folder: RunFolder, config: TrainConfig, split: str, market: MarketData,
                     results: list[BacktestResult], pre_cost: list[BacktestResult], training: TrainingRecord,
                     regimes: pd.DataFrame | None = None, universes: pd.DataFrame | None = None) -> EvaluationRecord:
    """A run's `eval/` folder from the walks through split `split` (`market`: its bars), post-cost
    and with trading costs scaled to zero: every walk's frames, the detected regimes and the
    test universes' walks (`eval.universes`) if given, and metrics.json; returns what
    metrics.json holds."""
    frames = {r.name: r.frames(market.symbols) for r in results}
    frames.update({r.name + PRE_COST: r.frames(market.symbols) for r in pre_cost})
    record = EvaluationRecord(
        split=split, market=market.name, periods_per_year=market.bars_per_year, seed=config.seed,
        ablation=config.ablation.name, budget=config.budget.name, symbols=list(market.symbols),
        domains={d: list(market.instruments_of(d)) for d in market.domain_names},
        first_bar=str(market.timestamps[0]), last_bar=str(market.timestamps[-1]),
        leak_next_return=config.leak_next_return,
        policies=json_ready({r.name: r.summary() for r in results}),
        pre_cost=json_ready({r.name: r.summary() for r in pre_cost}), training=training)
    folder.write_evaluation(record, frames, regimes, universes)
    return record


# ---------------------------------------------------------------------- python -m eval.backtest
@dataclass
class BacktestConfig:
    """The command line of `python -m eval.backtest` (see the module docstring)."""

    ckpt: str = MISSING       # a run folder (its last finished phase's best checkpoint) or a .ckpt file
    split: str = "test"
    policy: str = "learned"   # the run's learned policy, or a baseline of eval.oracle.EVALUATED_BASELINES
    out: str = ""             # default: <run>/backtest/<split>/


ConfigStore.instance().store(name="backtest_schema", node=BacktestConfig)


def replay(config: BacktestConfig) -> dict:
    """Walk the policy `config` names through its split, post-cost and pre-cost, and write the
    walks and summary_<policy>.json (see the module docstring); returns the summary. The split,
    the policy and the checkpoint are checked before the market is built."""
    if config.split not in SPLITS:
        raise ValueError(f"split='{config.split}' is not one of {SPLITS}")
    if config.policy not in ("learned", *LEARNED_POLICIES, *EVALUATED_BASELINES):
        raise ValueError(f"policy='{config.policy}' is not 'learned', one of {LEARNED_POLICIES} or a baseline "
                         f"of {EVALUATED_BASELINES}")
    path = Path(config.ckpt)
    checkpoint = RunFolder(path).policy_checkpoint(config.policy) if path.is_dir() else path
    learned = checkpoint_policy(checkpoint)
    if config.policy in LEARNED_POLICIES and config.policy != learned:
        raise ValueError(f"policy='{config.policy}': {checkpoint} holds the {learned} policy (the run did not "
                         f"train the {config.policy}, or name its checkpoint)")
    ws, policies = restore(checkpoint)
    policy = learned if config.policy == "learned" else config.policy
    out = Path(config.out) if config.out else RunFolder.of_checkpoint(checkpoint).backtest_dir(config.split)
    summary = {"checkpoint": str(checkpoint), "split": config.split, "policy": policy}
    for factor, suffix in ((1.0, ""), (0.0, PRE_COST)):
        log = out / "decisions.jsonl" if factor == 1.0 and policy == "hierarchy" else None
        result = walk_policy(ws, policies, policy, config.split, factor, log)
        write_frames(out, policy + suffix, result.frames(ws.market.symbols))
        summary["post_cost" if factor == 1.0 else "pre_cost"] = result.summary()
    write_json(out / f"summary_{policy}.json", summary)
    print(f"{policy} on {config.split} ({checkpoint}): Sharpe {summary['post_cost']['sharpe']:.3f} after costs, "
          f"{summary['pre_cost']['sharpe']:.3f} before; written to {out}")
    return summary


@hydra.main(config_path="../configs", config_name="backtest", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        replay(OmegaConf.to_object(cfg))
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"eval.backtest: {error}")


if __name__ == "__main__":
    main()
