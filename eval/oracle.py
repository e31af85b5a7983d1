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
run names it among `evaluation.baselines` like any baseline: `eval.backtest` tunes it once per
workspace on the validation window with the run's env settings, risk limits and features
(`tune_cost_aware_oracle`), then walks it with the tuned parameters wherever a baseline walks
(the test split, pre-cost, the fresh test universes). Row t of the ground truth is already the
expectation of bar t+1 given the close of t, so a decision at t reads row t and nothing later.

    python -m eval.backtest ckpt=<run> policy=oracle_cost_aware

replays it on a run's test split, after and before costs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from envs.market_data import MarketData
from envs.vec_env import VecMarketEnv
from eval.baselines import BASELINES, BaselineConfig, Decide, Policy, oracle_targets

ORACLE_COST_AWARE = "oracle_cost_aware"
EVALUATED_BASELINES: tuple[str, ...] = (*BASELINES, ORACLE_COST_AWARE)   # what `evaluation.baselines` may name


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
