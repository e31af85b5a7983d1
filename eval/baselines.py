"""Classical baselines as target-weight schedules over a market.

`baseline_weights(name, market, config, rng)` returns (T, N) target weights where row t uses data
stamped <= t only and is NaN on bars where the strategy does not rebalance (the simulator then
holds the drifted positions, trading nothing). Classical strategies rebalance on the
meta-controller's calendar (`rebalance_every` bars); the oracle trades every bar. The portfolio
optimisers are skfolio's (Ledoit-Wolf covariance), long-only and fully invested, fitted on the
trailing `lookback` bars of returns.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from envs.market_data import MarketData
from envs.vec_env import VecMarketEnv
from hierarchy.behaviour import trend_following

Decide = Callable[[VecMarketEnv], np.ndarray]
"""decide(env): the target weights (E, N) of each env at its current bar (NaN holds)."""
Policy = Callable[[MarketData, int], "np.ndarray | Decide"]
"""A strategy given a market and its first decision bar: a (T, N) target-weight schedule (NaN
holds) or a `decide(env)` function. Stress tests walk one policy through many markets."""


@dataclass
class BaselineConfig:
    """Calendar and estimation settings shared by the baselines (the `eval/` config)."""

    rebalance_every: int = 5               # the meta-controller's period
    lookback: int = 252                    # bars of returns the optimisers see
    min_history: int = 60                  # before this many bars: equal weight
    momentum_lookback: int = 60            # Black-Litterman views
    risk_assets: list[str] = field(default_factory=list)       # 60/40; empty: the equity classes
    defensive_assets: list[str] = field(default_factory=list)  # empty: every other instrument
    oracle_risk_aversion: float = 5.0      # mean-variance oracle: w = (1/lambda) Sigma^-1 mu
    max_leverage: float = 1.0              # gross cap of the trend and oracle strategies


BASELINES: tuple[str, ...] = ("equal_weight", "buy_and_hold", "sixty_forty", "min_variance",
                              "max_sharpe", "risk_parity", "hrp", "black_litterman",
                              "trend_following", "random", "oracle")


def rebalance_bars(n_bars: int, every: int, start: int = 0) -> np.ndarray:
    return np.arange(start, n_bars, every)


def _schedule(market: MarketData, bars: np.ndarray, rule: Callable[[int], np.ndarray]) -> np.ndarray:
    weights = np.full((market.n_bars, market.n_instruments), np.nan)
    for t in bars:
        weights[t] = rule(int(t))
    return weights


def _skfolio_rule(market: MarketData, config: BaselineConfig, name: str) -> Callable[[int], np.ndarray]:
    from skfolio.moments import LedoitWolf
    from skfolio.optimization import HierarchicalRiskParity, MeanRisk, ObjectiveFunction, RiskBudgeting
    from skfolio.prior import BlackLitterman, EmpiricalPrior

    returns = pd.DataFrame(np.expm1(market.log_returns), columns=list(market.symbols))
    equal = np.full(market.n_instruments, 1.0 / market.n_instruments)

    def prior() -> EmpiricalPrior:
        return EmpiricalPrior(covariance_estimator=LedoitWolf())

    def rule(t: int) -> np.ndarray:
        if t < config.min_history:
            return equal
        window = returns.iloc[max(1, t + 1 - config.lookback): t + 1]      # rows <= t
        if name == "min_variance":
            model = MeanRisk(prior_estimator=prior())
        elif name == "max_sharpe":
            model = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO, prior_estimator=prior())
        elif name == "risk_parity":
            model = RiskBudgeting(prior_estimator=prior())
        elif name == "hrp":
            model = HierarchicalRiskParity()
        else:                                                                 # black_litterman
            momentum = window.iloc[-config.momentum_lookback:].mean()
            views = [f"{symbol} == {value:.10f}" for symbol, value in momentum.items()]
            model = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                             prior_estimator=BlackLitterman(views=views, prior_estimator=prior()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")                                   # solver chatter
            try:
                model.fit(window)
            except Exception:                                                 # infeasible fit: stay put
                return equal
        weights = np.asarray(model.weights_, dtype=np.float64)
        return weights if np.isfinite(weights).all() else equal
    return rule


def oracle_targets(market: MarketData, risk_aversion: float, max_leverage: float) -> np.ndarray:
    """(T, N) mean-variance weights w_t = (1/lambda) Sigma_t^-1 m_t from the synthetic market's
    ground truth, gross capped at `max_leverage`; row t uses ground-truth row t only (the moments
    of bar t+1's return given the close of t). The log-return moments (mean mu, volatility s,
    correlation C) become simple-return ones as for a lognormal return: m = exp(mu + s^2/2) - 1,
    Sigma_ij = (1 + m_i)(1 + m_j)(exp(s_i s_j C_ij) - 1). C mixes the regimes' correlations over
    the next bar's regime, P[k_t, :] @ C_k (the generator's expected returns and volatilities mix
    over the same transition row); a market without a transition matrix uses the current regime's."""
    truth = market.ground_truth
    if truth is None:
        raise ValueError(f"the oracle needs a synthetic market's ground truth; '{market.name}' has none")
    K, N = truth.regime_correlation.shape[:2]
    transition = np.asarray(market.attrs.get("transition", np.eye(K)), dtype=np.float64)       # (K, K)
    correlation = (transition[truth.regime] @ truth.regime_correlation.reshape(K, N * N)).reshape(-1, N, N)
    mu, vol = truth.expected_returns, truth.conditional_vol                                     # (T, N)
    mean = np.expm1(mu + 0.5 * vol**2)                                                          # (T, N)
    growth = 1.0 + mean
    covariance = growth[:, :, None] * growth[:, None, :] * np.expm1(vol[:, :, None] * correlation * vol[:, None, :])
    weights = np.linalg.solve(covariance, mean[..., None])[..., 0] / risk_aversion              # (T, N)
    gross = np.abs(weights).sum(axis=1, keepdims=True)
    return weights * np.minimum(1.0, max_leverage / np.where(gross > 0, gross, np.inf))


def baseline_weights(name: str, market: MarketData, config: BaselineConfig | None = None,
                     rng: np.random.Generator | None = None, start: int = 0) -> np.ndarray:
    """(T, N) target weights of the named baseline, rebalancing from bar `start` (the
    simulator's first decision bar, its `warmup_bars`); NaN rows mean 'hold'."""
    config = config or BaselineConfig()
    T, N = market.n_bars, market.n_instruments
    bars = rebalance_bars(T, config.rebalance_every, start)
    equal = np.full(N, 1.0 / N)
    if name == "equal_weight":
        return _schedule(market, bars, lambda t: equal)
    if name == "buy_and_hold":
        return _schedule(market, bars[:1], lambda t: equal)
    if name == "sixty_forty":
        return _schedule(market, bars, lambda t: _sixty_forty(market, config))
    if name in ("min_variance", "max_sharpe", "risk_parity", "hrp", "black_litterman"):
        return _schedule(market, bars, _skfolio_rule(market, config, name))
    if name == "trend_following":
        signals = trend_following(market.close)
        return _schedule(market, bars, lambda t: config.max_leverage * signals[t] / N)
    if name == "random":
        rng = rng or np.random.default_rng(0)
        return _schedule(market, bars, lambda t: rng.dirichlet(np.ones(N)))
    if name == "oracle":
        targets = oracle_targets(market, config.oracle_risk_aversion, config.max_leverage)
        return _schedule(market, rebalance_bars(T, 1, start), lambda t: targets[t])
    raise KeyError(f"unknown baseline '{name}'; one of {BASELINES}")


def _sixty_forty(market: MarketData, config: BaselineConfig) -> np.ndarray:
    symbols = list(market.symbols)
    risk = config.risk_assets or [s for s, c in zip(symbols, market.asset_classes)
                                  if c in ("equity_index", "equity")]
    defensive = config.defensive_assets or [s for s in symbols if s not in risk]
    unknown = sorted(set(risk + defensive) - set(symbols))
    if unknown or not risk or not defensive:
        raise ValueError(f"sixty_forty needs risk and defensive assets of the universe; risk={risk}, "
                         f"defensive={defensive}, unknown={unknown}")
    weights = np.zeros(len(symbols))
    weights[[symbols.index(s) for s in risk]] = 0.6 / len(risk)
    weights[[symbols.index(s) for s in defensive]] = 0.4 / len(defensive)
    return weights


def baseline_policy(name: str, config: BaselineConfig | None = None, seed: int = 0) -> Policy:
    """The named baseline as a `Policy`: its schedule for any market, rebalancing
    from the first decision bar (the random baseline drawn afresh from `seed` for each market)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline '{name}'; one of {BASELINES}")
    return lambda market, start: baseline_weights(name, market, config, np.random.default_rng(seed), start)
