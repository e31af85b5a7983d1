"""The cost-aware oracle: the synthetic market's true conditional moments traded with a no-trade
band and partial adjustment, tuned on the validation split; the practical upper bound after costs.

The plain oracle (`eval.baselines`, "oracle") trades to the mean-variance target
`oracle_targets` every bar (the ground truth's moments as simple-return ones, the correlation
mixed over the next bar's regime) and loses its edge to costs: the target swings with the one-bar
momentum and sentiment terms of the expected return. This one trades toward the same target
(risk aversion lambda, gross cap) from the book it holds, each instrument on its own:

    gap_i   = target_ti - w_ti                         w_t: the drifted weights at the close of t
    hold      where |gap_i| <= band                      (NaN: no trade)
    w'_i    = (1 - rate) w_ti + rate (target_ti - sign(gap_i) band)      elsewhere

With rate 1 it trades to the near edge of the no-trade region around the target, the optimal
policy under proportional costs (Constantinides 1986, Davis and Norman 1990; per-asset bands as
in Leland 2000); with band 0 it trades a fraction `rate` of the gap, the partial adjustment of
Garleanu and Pedersen (2013, "Dynamic trading with predictable returns and transaction costs"),
whose aim portfolio here is the current target (the moments of the next bar only, so the rate
also averages the target over about 1 / rate bars, as their aim portfolio averages future
Markowitz portfolios). Band 0 and rate 1 (at the plain oracle's lambda) is the plain oracle.

It needs the env's drifted weights, so it is a `Policy` returning a `decide(env)` function, not
a schedule, and it is not one of `eval.baselines.BASELINES`; its name is `ORACLE_COST_AWARE`. A
run's evaluation walks it with `eval.backtest`: `tune_cost_aware_oracle` on the validation window
(`Workspace.window("validation")`, `settings.eval_env`, `config.risk`, the window's features),
then `run_policy(ORACLE_COST_AWARE, <test window>, ..., cost_aware_oracle(tuning.params), ...)`,
as `main` below does. Row t of the ground truth is already the expectation of bar t+1 given the
close of t, so a decision at t reads row t and nothing later.

    python -m eval.oracle [overrides of configs/train.yaml ...]

tunes it on the default market's validation split and prints the test-split table: the plain
oracle, the tuned cost-aware oracle and equal weight, after and before costs.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.vec_env import VecMarketEnv
from eval.backtest import Decide, Policy, run_policy
from eval.baselines import BaselineConfig, oracle_targets
from risk.limits import RiskLimits

ORACLE_COST_AWARE = "oracle_cost_aware"


@dataclass(frozen=True)
class OracleParams:
    """One cost-aware oracle: the mean-variance target's risk aversion and gross cap, the no-trade
    band (half-width, in weight units, per instrument) and the adjustment rate in (0, 1]."""

    risk_aversion: float = BaselineConfig.oracle_risk_aversion
    band: float = 0.0
    rate: float = 1.0
    max_leverage: float = BaselineConfig.max_leverage


@dataclass(frozen=True)
class OracleGrid:
    """The configurations tuning walks: every combination, in this order (ties go to the first).

    The unscaled target Sigma^-1 m has a median gross of about 250 on synthetic8 (the one-bar
    momentum and sentiment terms are strong), so lambda 5 is the gross cap's direction only,
    250 holds about the cap and 1000 about a quarter of it. The grid holds the plain oracle
    (lambda 5, band 0, rate 1): tuning never does worse than it on validation. 27 walks, 3 s
    through the 751 validation bars of the default market on one core."""

    risk_aversions: tuple[float, ...] = (5.0, 250.0, 1000.0)
    bands: tuple[float, ...] = (0.0, 0.1, 0.2)
    rates: tuple[float, ...] = (0.03, 0.1, 1.0)
    max_leverage: float = BaselineConfig.max_leverage

    def configurations(self) -> list[OracleParams]:
        return [OracleParams(lam, band, rate, self.max_leverage)
                for lam, band, rate in itertools.product(self.risk_aversions, self.bands, self.rates)]


@dataclass
class OracleTuning:
    """The tuned parameters and every configuration's validation walk (one row each)."""

    params: OracleParams
    results: pd.DataFrame = field(repr=False)   # risk_aversion, band, rate, max_leverage, sharpe, turnover, costs
    seconds: float

    @property
    def configurations(self) -> int:
        return len(self.results)


def cost_aware_decide(targets: np.ndarray, band: float, rate: float) -> Decide:
    """decide(env): the band-and-rate rule of the module docstring toward `targets` (T, N), the
    env's market's rows, from each env's drifted weights; NaN holds an instrument."""
    if band < 0 or not 0 < rate <= 1:
        raise ValueError(f"the cost-aware oracle needs band >= 0 and 0 < rate <= 1, got band={band}, rate={rate}")

    def decide(env: VecMarketEnv) -> np.ndarray:
        target = targets[env.state.bar]                                          # (E, N)
        current = env.weights                                                    # (E, N) drifted
        gap = target - current
        edge = target - np.sign(gap) * band
        return np.where(np.abs(gap) > band, (1.0 - rate) * current + rate * edge, np.nan)
    return decide


def cost_aware_oracle(params: OracleParams) -> Policy:
    """The cost-aware oracle with `params` as an `eval.backtest.Policy` for any market with
    ground truth (a clear error names a market without)."""

    def policy(market: MarketData, first_bar: int) -> Decide:
        targets = oracle_targets(market, params.risk_aversion, params.max_leverage)
        return cost_aware_decide(targets, params.band, params.rate)
    return policy


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


# ---------------------------------------------------------------------- python -m eval.oracle
def main(overrides: list[str]) -> pd.DataFrame:
    """Tune on the validation split of the market `configs/train.yaml` (with `overrides`)
    composes, then walk the test split as a run's evaluation walks its baselines; print and
    return the table."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from eval.backtest import scale_costs
    from eval.baselines import baseline_policy
    from learners.run.config import register_configs
    from learners.run.workspace import Workspace

    register_configs()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[1] / "configs"), version_base="1.3"):
        config = OmegaConf.to_object(compose("train", overrides=overrides))
    ws = Workspace.build(config)
    env_config, limits = ws.settings.eval_env, ws.config.risk
    validation, features = ws.window("validation")
    tuning = tune_cost_aware_oracle(validation, env_config, limits, **features)
    test, features = ws.window("test")
    calendar = BaselineConfig(rebalance_every=config.hierarchy.meta_period)       # as the run's baselines
    policies = {"oracle": baseline_policy("oracle", calendar, config.seed),
                ORACLE_COST_AWARE: cost_aware_oracle(tuning.params),
                "equal_weight": baseline_policy("equal_weight", calendar, config.seed)}
    rows: dict[str, dict[str, float]] = {name: {} for name in policies}
    for factor, column in ((1.0, "after costs"), (0.0, "before costs")):
        for name, policy in policies.items():
            summary = run_policy(name, scale_costs(test, factor), env_config, policy, limits, **features).summary()
            rows[name][f"sharpe {column}"] = summary["sharpe"]
            rows[name][f"turnover/yr {column}"] = summary["turnover"]
    table = pd.DataFrame(rows).T
    print(f"market {ws.market.name}: tuned on {ws.splits.validation.n_bars} validation bars, "
          f"{tuning.configurations} configurations in {tuning.seconds:.1f} s: {tuning.params}")
    print(tuning.results.sort_values("sharpe", ascending=False).head(5).to_string(index=False))
    print(f"test split, {ws.splits.test.n_bars} bars:")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    return table


if __name__ == "__main__":
    main(sys.argv[1:])
