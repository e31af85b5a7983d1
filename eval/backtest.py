"""Backtests: a policy or a weight schedule walked once through a split in the simulator.

Every strategy runs in the same `VecMarketEnv` with the same costs (one env, `episode_length=0`:
the whole split from `warmup_bars`, deterministically). Pre-cost and cost-stress runs scale the
trading costs (spread, commission, slippage, impact and the financing spread over the short
rate); funding leverage at the short rate itself is a return, not a trading cost, and stays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from envs.config import EnvConfig
from envs.costs import InstrumentCosts
from envs.market_data import MarketData
from envs.state import COST_KINDS
from envs.vec_env import VecMarketEnv
from eval import metrics
from hierarchy.decision_log import DecisionLog
from hierarchy.risk_hook import risk_env
from hierarchy.system import HierarchicalSystem
from risk.limits import RiskLimits

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

    def summary(self, risk_free: float = 0.0) -> dict[str, float]:
        """Headline metrics (eval.metrics conventions); turnover and costs per year, costs as a
        fraction of initial equity."""
        stats = {k: float(v[0]) for k, v in metrics.summary(self.returns, risk_free, self.periods_per_year).items()}
        years = len(self.returns) / self.periods_per_year
        stats["turnover"] = float(self.turnover.sum() / years)
        stats["costs"] = float(self.costs.sum() / self.initial_equity / years)
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

    def write(self, folder: str | Path, symbols: tuple[str, ...]) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.frames(symbols).items():
            tmp = folder / f".{self.name}_{name}.parquet.tmp"
            frame.to_parquet(tmp)
            tmp.replace(folder / f"{self.name}_{name}.parquet")


Decide = Callable[[VecMarketEnv], np.ndarray]


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
                          config.initial_equity, market.bars_per_year)


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


Policy = Callable[[MarketData, int], "np.ndarray | Decide"]
"""A strategy given a market and its first decision bar: a (T, N) target-weight schedule (NaN
holds) or a `decide(env)` function. Stress tests walk one policy through many markets."""


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


def main(argv: list[str] | None = None) -> None:
    """`python -m eval.backtest ckpt=<run folder or .ckpt> [split=test] [policy=learned] [out=...]`

    Walks a run's trained policy (its last finished phase's best checkpoint, or the checkpoint
    given) or any baseline (`policy=<name>` of `eval.baselines.BASELINES`) once through a split
    of the run's market, deterministically, post-cost and pre-cost, and writes the daily returns,
    weights, costs and contributions as Parquet, the hierarchy's decision log (JSONL) and
    summary.json to `out` (default `<run>/backtest/<split>/`)."""
    import json
    import sys

    from hierarchy.decision_log import json_ready
    from learners.evaluation import backtest, final_checkpoint, restore
    from learners.fabric import FabricConfig, make_fabric

    args = dict(arg.split("=", 1) for arg in (sys.argv[1:] if argv is None else argv) if "=" in arg)
    unknown = sorted(set(args) - {"ckpt", "split", "policy", "out"})
    if "ckpt" not in args or unknown:
        raise SystemExit("usage: python -m eval.backtest ckpt=<run folder or .ckpt> [split=test] "
                         "[policy=learned|<baseline>] [out=<folder>]" + (f"; unknown {unknown}" if unknown else ""))
    path = Path(args["ckpt"])
    checkpoint = final_checkpoint(path) if path.is_dir() else path
    split = args.get("split", "test")
    ctx, trained = restore(checkpoint, make_fabric(FabricConfig(log_dir="")))
    policy = args.get("policy", "learned")
    if policy == "learned":
        policy = "hierarchy" if trained.system is not None else "flat_ppo"
    out = Path(args.get("out", ctx.run_dir / "backtest" / split))
    summary = {"checkpoint": str(checkpoint), "split": split, "policy": policy}
    for factor, suffix in ((1.0, ""), (0.0, "_precost")):
        log = out / "decisions.jsonl" if factor == 1.0 and policy == "hierarchy" else None
        result = backtest(ctx, trained, policy, split, factor, log)
        dataclasses.replace(result, name=policy + suffix).write(out, ctx.ws.market.symbols)
        summary["post_cost" if factor == 1.0 else "pre_cost"] = result.summary()
    (out / "summary.json").write_text(json.dumps(json_ready(summary), indent=2))
    print(f"{policy} on {split} ({checkpoint}): Sharpe {summary['post_cost']['sharpe']:.3f} after costs, "
          f"{summary['pre_cost']['sharpe']:.3f} before; written to {out}")


if __name__ == "__main__":
    main()
