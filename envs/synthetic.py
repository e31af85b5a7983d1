"""The embedded synthetic market: a seeded regime-switching generator with known ground truth.

Model, per bar t and instrument i (log returns, daily units):

    regime k_t             Markov chain over (bull, bear, volatile), persistent
    sigma_ti               = vol_i * regime_vol_k * sqrt(h_ti)     GARCH(1,1) variance h, mean 1
    z_t                    = L_k g_t * sqrt((df - 2) / chi2_t)      multivariate Student-t, unit var
    r_ti                   = mu_ti + sigma_ti * z_ti + J_ti
    mu_ti                  = alpha * drift_ki / bars_per_year        expected *simple* return ...
                             - sigma_ti^2 / 2 - jump compensator     ... made a log mean
                             + alpha * momentum * (r_{t-1,i} - mu_{t-1,i})   short-horizon momentum
    J_ti                   lognormal-size jumps, Poisson rate per regime (crash regime: 4x)
    sentiment_ti (at t)    = rho * g_{t+1,i} + sqrt(1 - rho^2) * eta,  rho = alpha * sentiment_ic

Correlations come from a factor model per regime (dollar, risk-on, equity, Europe, energy, tech
factors), so they are positive definite by construction and shift toward risk-on/risk-off
co-movement in the volatile regime. With `alpha = 0` there is no drift, no momentum and no
sentiment information: expected simple returns are zero and nothing is exploitable.
Ground truth: the regime path and, for every bar, the mean and volatility of the next bar's log
return given everything the generator knew at its close.

Stress scenarios force the regime on chosen bar windows (`forced_regimes`, e.g. the volatile
regime for a crash). The random draws stay the same, so bars before the first window are
identical to the unforced market's; the chain leaves a window from the forced regime. A forced
window is a surprise to the model: the ground truth reports the forced path, and its next-bar
expectations still mix over the transition matrix from the regime in force.

Intraday bars (`bar_minutes` < 1440; daily bars are the default and keep the model above bar for
bar): the calendar is every weekday cut into bars of `bar_minutes` (bar t closes at its stamp).
An instrument's day of variance is spread over its bars by a variance share v (summing to one
over the day), and drift, jump intensity and the bar's variance scale with v:

    FX (around the clock on weekdays)    v follows 1 + s cos(2 pi (hour - 14.5) / 24): busiest
                                         at the London-New York overlap
    other classes (sessions, UTC hours)  v is 0 outside the session (the bar is FORWARD_FILLED:
                                         flat, no volume, not tradable); inside it follows the
                                         U-shape 1 + s (3 (2x - 1)^2 - 1) over the session's
                                         progress x; the first bar of a session also carries the
                                         overnight share of the day's variance, as its open's gap

(s = `seasonality`). Regime durations, GARCH persistence and jump rates stay per trading day:
a regime lasts `regime_durations[k]` days of bars, and GARCH keeps its per-day persistence and its
alpha / (1 - persistence). Volume follows v. The ground truth is per bar, as for daily bars.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numba import njit

from envs.costs import CostConfig, resolve_costs
from envs.market_data import FORWARD_FILLED, GroundTruth, MarketData

REGIMES: tuple[str, ...] = ("bull", "bear", "volatile")
MINUTES_PER_DAY = 1440
FACTORS: tuple[str, ...] = ("dollar", "risk", "equity", "europe", "energy", "tech")


@dataclass(frozen=True)
class InstrumentSpec:
    """One synthetic instrument: class, scale and behaviour per regime."""

    symbol: str
    domain: str
    asset_class: str
    annual_vol: float
    start_price: float
    drift: tuple[float, float, float]          # expected simple annual return per regime
    calm_loadings: dict[str, float]            # factor loadings in the bull regime
    stress_loadings: dict[str, float]          # factor loadings in the volatile regime
    overnight_share: float = 0.1               # share of daily variance realised overnight
    notional_adv: float = 1e10                 # average daily traded notional
    jump_mean: float = 0.0                     # mean jump size in daily vols (negative: crashes)


SYNTHETIC8: tuple[InstrumentSpec, ...] = (
    InstrumentSpec("EURUSD", "forex", "fx", 0.07, 1.30, (0.03, -0.02, -0.06),
                   {"dollar": 0.75, "europe": 0.35, "risk": 0.10},
                   {"dollar": 0.70, "europe": 0.35, "risk": 0.25}, 0.02, 5e11),
    InstrumentSpec("GBPUSD", "forex", "fx", 0.08, 1.55, (0.02, -0.03, -0.08),
                   {"dollar": 0.65, "europe": 0.40, "risk": 0.15},
                   {"dollar": 0.60, "europe": 0.40, "risk": 0.35}, 0.02, 2e11),
    InstrumentSpec("USDJPY", "forex", "fx", 0.09, 90.0, (0.04, -0.02, -0.12),
                   {"dollar": -0.45, "risk": 0.35},
                   {"dollar": -0.40, "risk": 0.60}, 0.02, 3e11),
    InstrumentSpec("XAUUSD", "commodities", "commodity", 0.15, 1200.0, (0.02, 0.08, 0.15),
                   {"dollar": 0.40, "risk": -0.05},
                   {"dollar": 0.35, "risk": -0.35}, 0.10, 5e10),
    InstrumentSpec("WTIUSD", "commodities", "commodity", 0.35, 80.0, (0.15, -0.15, -0.60),
                   {"risk": 0.35, "dollar": 0.15, "energy": 0.60},
                   {"risk": 0.60, "dollar": 0.10, "energy": 0.55}, 0.10, 4e10, -1.0),
    InstrumentSpec("SPX500", "equity", "equity_index", 0.17, 1150.0, (0.18, -0.12, -0.45),
                   {"risk": 0.60, "equity": 0.75},
                   {"risk": 0.85, "equity": 0.50}, 0.25, 3e11, -2.0),
    InstrumentSpec("NAS100", "equity", "equity_index", 0.22, 1900.0, (0.22, -0.16, -0.55),
                   {"risk": 0.55, "equity": 0.70, "tech": 0.30},
                   {"risk": 0.80, "equity": 0.50, "tech": 0.25}, 0.25, 2e11, -2.0),
    InstrumentSpec("US30", "equity", "equity_index", 0.16, 10500.0, (0.16, -0.11, -0.42),
                   {"risk": 0.60, "equity": 0.72},
                   {"risk": 0.85, "equity": 0.48}, 0.25, 1e11, -2.0),
)


@dataclass
class RegimeWindow:
    """Bars [start, stop) of the generated market held in one regime (a stress scenario)."""

    start: int
    stop: int
    regime: str = "volatile"


@dataclass
class SyntheticConfig:
    """Parameters of the generator; `alpha` scales every source of predictability."""

    universe: str = "synthetic8"       # 'synthetic8', or 'factor' for `n_instruments` generated ones
    n_instruments: int = 8             # used by the 'factor' universe only
    years: float = 10.0
    bars_per_year: int = 252           # trading days a year (the bars a year of daily bars)
    bar_minutes: int = MINUTES_PER_DAY  # bar length; below 1440, intraday bars (module docstring)
    # trading sessions in UTC hours [open, close) per asset class, on intraday bars; a class
    # without one (FX by default) trades around the clock on weekdays
    sessions: dict[str, list[float]] = field(default_factory=lambda: {
        "commodity": [1.0, 22.0], "equity_index": [14.5, 21.0], "equity": [14.5, 21.0]})
    seasonality: float = 0.5           # strength s of the intraday variance pattern, in [0, 1)
    start: str = "2010-01-04"
    seed: int = 0
    alpha: float = 1.0
    regime_durations: list[float] = field(default_factory=lambda: [120.0, 60.0, 20.0])
    regime_vol: list[float] = field(default_factory=lambda: [0.8, 1.15, 2.2])  # before normalising
    momentum: float = 0.05             # AR(1) coefficient on the previous bar's surprise
    sentiment_ic: float = 0.1          # correlation of sentiment with the next bar's shock
    garch_alpha: float = 0.06
    garch_beta: float = 0.92
    tail_df: float = 5.0               # Student-t degrees of freedom of the shocks
    jumps_per_year: float = 1.0        # per instrument in calm regimes; 4x in the volatile one
    jump_scale: float = 3.0            # jump standard deviation in daily vols
    macro_noise: float = 0.05
    forced_regimes: list[RegimeWindow] = field(default_factory=list)   # empty: the chain runs free


def transition_matrix(durations: list[float]) -> np.ndarray:
    """(K, K) Markov transition matrix with expected stay `durations[k]` bars in regime k.

    Leaving bull goes to bear 70 % / volatile 30 %; leaving bear goes to bull 60 % / volatile 40 %;
    leaving volatile goes to bear or bull evenly.
    """
    exits = np.array([[0.0, 0.7, 0.3], [0.6, 0.0, 0.4], [0.5, 0.5, 0.0]])
    stay = 1.0 - 1.0 / np.asarray(durations, dtype=np.float64)
    if len(durations) != 3 or (stay <= 0).any():
        raise ValueError(f"regime_durations must be 3 values > 1 bar, got {durations}")
    return np.diag(stay) + (1.0 - stay)[:, None] * exits


def stationary_distribution(transition: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eig(transition.T)
    pi = np.real(vectors[:, np.argmin(np.abs(values - 1.0))])
    return pi / pi.sum()


def regime_correlations(specs: tuple[InstrumentSpec, ...]) -> np.ndarray:
    """(3, N, N) correlation per regime: loadings move from calm (bull) to stress (volatile);
    bear sits halfway. Idiosyncratic variance fills each diagonal to one."""
    def loadings(which: str) -> np.ndarray:
        return np.array([[getattr(s, which).get(f, 0.0) for f in FACTORS] for s in specs])

    calm, stress = loadings("calm_loadings"), loadings("stress_loadings")
    out = []
    for B in (calm, 0.5 * (calm + stress), stress):
        common = B @ B.T
        idio = 1.0 - np.diag(common)
        if (idio <= 0.01).any():
            bad = specs[int(np.argmin(idio))].symbol
            raise ValueError(f"factor loadings of {bad} leave no idiosyncratic variance")
        out.append(common + np.diag(idio))
    return np.stack(out)


def factor_universe(n: int, seed: int) -> tuple[InstrumentSpec, ...]:
    """`n` generated instruments in four domains, for scale tests (e.g. 500 instruments)."""
    rng = np.random.default_rng(seed)
    kinds = [("forex", "fx", 0.08, 0.02, "dollar"), ("commodities", "commodity", 0.25, 0.10, "energy"),
             ("equity", "equity_index", 0.20, 0.25, "equity"), ("stocks", "equity", 0.30, 0.3, "tech")]
    specs = []
    for i in range(n):
        domain, asset_class, vol, overnight, own = kinds[i % len(kinds)]
        calm = {"risk": rng.uniform(0.1, 0.5), own: rng.uniform(0.3, 0.6)}
        stress = {"risk": min(calm["risk"] + 0.25, 0.8), own: calm[own] * 0.8}
        base_drift = rng.normal(0.06, 0.04)
        specs.append(InstrumentSpec(
            f"{asset_class.upper()[:3]}{i:04d}", domain, asset_class,
            float(vol * rng.uniform(0.7, 1.3)), float(rng.uniform(20, 200)),
            (base_drift + 0.05, base_drift - 0.15, base_drift - 0.40), calm, stress,
            overnight, float(10 ** rng.uniform(9, 11)), -1.0 if asset_class != "fx" else 0.0))
    return tuple(specs)


def universe_specs(config: SyntheticConfig) -> tuple[InstrumentSpec, ...]:
    if config.universe == "synthetic8":
        return SYNTHETIC8
    if config.universe == "factor":
        return factor_universe(config.n_instruments, config.seed)
    raise ValueError(f"synthetic universe '{config.universe}' is not 'synthetic8' or 'factor'")


def forced_path(windows: list[RegimeWindow], n_bars: int) -> np.ndarray:
    """(n_bars,) int64: the regime index forced at each bar, -1 where the chain runs free."""
    forced = np.full(n_bars, -1, dtype=np.int64)
    for k, window in enumerate(windows):
        if window.regime not in REGIMES:
            raise ValueError(f"forced_regimes[{k}].regime '{window.regime}' is not one of {REGIMES}")
        if not 0 <= window.start < window.stop <= n_bars:
            raise ValueError(f"forced_regimes[{k}] = bars [{window.start}, {window.stop}) is not inside "
                             f"the market's {n_bars} bars")
        forced[window.start:window.stop] = REGIMES.index(window.regime)
    return forced


def bars_per_day(bar_minutes: int) -> int:
    """Bars in a day of `bar_minutes` bars (1 for daily bars); raise unless they tile the day."""
    if not 0 < bar_minutes <= MINUTES_PER_DAY or MINUTES_PER_DAY % bar_minutes:
        raise ValueError(f"market.synthetic.bar_minutes={bar_minutes} must divide a day of "
                         f"{MINUTES_PER_DAY} minutes (e.g. 5, 30, 60, or 1440 for daily bars)")
    return MINUTES_PER_DAY // bar_minutes


def bar_garch(alpha: float, beta: float, m: int) -> tuple[float, float]:
    """Per-bar GARCH(1,1) coefficients for `m` bars a day from per-day ones: the same
    persistence per day, (alpha + beta)^(1/m) per bar, and the same alpha / (1 - persistence)."""
    if m == 1:
        return alpha, beta
    if not alpha + beta < 1.0:
        raise ValueError(f"garch_alpha + garch_beta = {alpha + beta} must be < 1 on intraday bars")
    persistence = (alpha + beta) ** (1.0 / m)
    per_bar = alpha * (1.0 - persistence) / (1.0 - alpha - beta)
    return per_bar, persistence - per_bar


@dataclass(frozen=True)
class BarCalendar:
    """The bars of a synthetic market and how each instrument's day of variance falls on them."""

    timestamps: pd.DatetimeIndex       # (T,) bar closes, UTC
    share: np.ndarray                  # (T + 1, N) each bar's share of its day's variance
    gap: np.ndarray                    # (T, N) share of a bar's own variance realised at its open


def day_profile(spec: InstrumentSpec, config: SyntheticConfig, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(m,) variance share and open-gap share of each bar of one of `spec`'s days (module
    docstring): around the clock, or inside its asset class's session."""
    s = config.seasonality
    if not 0.0 <= s < 1.0:
        raise ValueError(f"market.synthetic.seasonality={s} must be in [0, 1)")
    hours = config.bar_minutes / 60.0
    closes = (np.arange(m) + 1) * hours                                   # (m,) close, in hours
    session = config.sessions.get(spec.asset_class)
    share, gap = np.zeros(m), np.zeros(m)
    if session is None:
        weight = 1.0 + s * np.cos(2.0 * np.pi * (closes - 0.5 * hours - 14.5) / 24.0)
        return weight / weight.sum(), gap
    if len(session) != 2 or not 0.0 <= session[0] < session[1] <= 24.0:
        raise ValueError(f"market.synthetic.sessions.{spec.asset_class}={list(session)} must be "
                         f"[open, close] UTC hours with 0 <= open < close <= 24")
    active = np.flatnonzero((closes > session[0]) & (closes <= session[1]))
    if active.size == 0:
        raise ValueError(f"market.synthetic.sessions.{spec.asset_class}={list(session)} holds no "
                         f"bar of {config.bar_minutes} minutes")
    progress = (np.arange(active.size) + 0.5) / active.size
    weight = 1.0 + s * (3.0 * (2.0 * progress - 1.0) ** 2 - 1.0)
    w = spec.overnight_share
    share[active] = (1.0 - w) * weight / weight.sum()
    share[active[0]] += w
    gap[active[0]] = w / share[active[0]]
    return share, gap


def bar_calendar(config: SyntheticConfig, specs: tuple[InstrumentSpec, ...], n_days: int) -> BarCalendar:
    """Weekday bars of `config.bar_minutes`; daily bars: one per weekday, every share 1 and the
    open's gap the instrument's overnight share."""
    m = bars_per_day(config.bar_minutes)
    days = pd.bdate_range(config.start, periods=n_days, tz="UTC", name="timestamp")
    N = len(specs)
    if m == 1:
        overnight = np.array([spec.overnight_share for spec in specs])
        return BarCalendar(days, np.ones((n_days + 1, N)), np.broadcast_to(overnight, (n_days, N)))
    offsets = (np.arange(m) + 1) * np.timedelta64(config.bar_minutes, "m")
    closes = days.tz_localize(None).to_numpy()[:, None] + offsets[None, :]          # (days, m)
    stamps = pd.DatetimeIndex(closes.ravel(), name="timestamp").tz_localize("UTC")
    profiles = [day_profile(spec, config, m) for spec in specs]
    share = np.stack([p[0] for p in profiles], axis=1)                    # (m, N)
    gap = np.stack([p[1] for p in profiles], axis=1)
    return BarCalendar(stamps, np.vstack([np.tile(share, (n_days, 1)), share[:1]]), np.tile(gap, (n_days, 1)))


@njit(cache=True)
def _markov_path(transition: np.ndarray, initial: int, uniforms: np.ndarray,
                 forced: np.ndarray) -> np.ndarray:
    path = np.empty(uniforms.shape[0], dtype=np.int64)
    state = initial
    for t in range(uniforms.shape[0]):
        if t > 0:
            cumulative = 0.0
            row = transition[state]
            for k in range(row.shape[0]):
                cumulative += row[k]
                if uniforms[t] < cumulative or k == row.shape[0] - 1:
                    state = k
                    break
        if forced[t] >= 0:
            state = forced[t]
        path[t] = state
    return path


@njit(cache=True)
def _simulate_returns(regime: np.ndarray, shocks: np.ndarray, jumps: np.ndarray, share: np.ndarray,
                      daily_vol: np.ndarray, regime_vol: np.ndarray, drift: np.ndarray,
                      jump_rate: np.ndarray, jump_mu: np.ndarray, jump_sd: float,
                      momentum: float, garch_a: float, garch_b: float,
                      transition: np.ndarray, sentiment_loading: np.ndarray):
    """Sequential part of the model over T+1 bars (the extra bar feeds sentiment of the last).

    shocks: (T+1, N) unit-variance multivariate-t draws; jumps: (T+1, N) realised jump sizes in
    daily vols (0 where none); share: (T+1, N) each bar's share of its day's variance (1 on daily
    bars; 0 outside a session, where nothing moves and the state waits). Drift, jump intensity
    and variance are per day, scaled by the share. Returns log returns, the expected next-bar log
    return and its volatility given the state at each bar's close.
    """
    n_bars, n = shocks.shape
    K = transition.shape[0]
    returns = np.zeros((n_bars, n))
    expected = np.zeros((n_bars, n))
    cond_vol = np.zeros((n_bars, n))
    h = np.ones(n)                      # GARCH variance multiplier for the current bar
    surprise = np.zeros(n)              # r_{t-1} - E_{t-2}[r_{t-1}]
    jump_growth = np.exp(jump_mu * daily_vol + 0.5 * (jump_sd * daily_vol) ** 2) - 1.0   # E[e^J] - 1
    for t in range(n_bars):
        k = regime[t]
        for i in range(n):
            v = share[t, i]
            if v > 0.0:
                sigma = daily_vol[i] * np.sqrt(v) * regime_vol[k] * np.sqrt(h[i])
                comp = jump_rate[k] * v * jump_growth[i]
                mean = drift[k, i] * v - 0.5 * sigma * sigma - comp + momentum * surprise[i]
                r = mean + sigma * shocks[t, i] + jumps[t, i] * daily_vol[i]
                returns[t, i] = r
                surprise[i] = r - mean
                h[i] = (1.0 - garch_a - garch_b) + garch_a * shocks[t, i] ** 2 + garch_b * h[i]
            # the next bar's mean and variance, averaged over the next regime
            v = share[min(t + 1, n_bars - 1), i]
            m_next = 0.0
            v_next = 0.0
            for k2 in range(K):
                p = transition[k, k2]
                s2 = daily_vol[i] * np.sqrt(v) * regime_vol[k2] * np.sqrt(h[i])
                c2 = jump_rate[k2] * v * jump_growth[i]
                m_next += p * (drift[k2, i] * v - 0.5 * s2 * s2 - c2 + s2 * sentiment_loading[t, i])
                v_next += p * (s2 * s2 + jump_rate[k2] * v * daily_vol[i] ** 2 * (jump_mu[i] ** 2 + jump_sd ** 2))
            expected[t, i] = m_next + momentum * surprise[i] if v > 0.0 else 0.0
            cond_vol[t, i] = np.sqrt(v_next)
    return returns, expected, cond_vol


def _ou(rng: np.random.Generator, levels: np.ndarray, speed: float, noise: float,
        start: float) -> np.ndarray:
    """Mean-reverting path toward a per-bar level (regime dependent)."""
    path = np.empty(levels.shape[0])
    x = start
    eps = rng.standard_normal(levels.shape[0])
    for t in range(levels.shape[0]):
        x = x + speed * (levels[t] - x) + noise * eps[t]
        path[t] = x
    return path


def generate(config: SyntheticConfig | None = None, costs: CostConfig | None = None) -> MarketData:
    """Build a synthetic market from `config`; same config, same bytes."""
    config = config or SyntheticConfig()
    specs = universe_specs(config)
    rng = np.random.default_rng(config.seed)
    bpy = config.bars_per_year
    m = bars_per_day(config.bar_minutes)
    T = int(round(config.years * bpy)) * m
    N = len(specs)
    if T < 10:
        raise ValueError(f"synthetic market of {config.years} years has only {T} bars")
    if not 2.0 < config.tail_df:
        raise ValueError(f"tail_df must exceed 2 for a finite variance, got {config.tail_df}")
    calendar = bar_calendar(config, specs, T // m)

    transition = transition_matrix([d * m for d in config.regime_durations])
    pi = stationary_distribution(transition)
    regime_vol = np.asarray(config.regime_vol, dtype=np.float64)
    regime_vol = regime_vol / np.sqrt(pi @ regime_vol**2)   # unconditional vol = annual_vol
    correlation = regime_correlations(specs)                # (K, N, N)
    cholesky = np.linalg.cholesky(correlation)

    n_bars = T + 1                                           # one extra bar feeds the last sentiment
    forced = np.append(forced_path(config.forced_regimes, T), -1)
    regime = _markov_path(transition, int(rng.choice(3, p=pi)), rng.random(n_bars), forced)
    gaussian = rng.standard_normal((n_bars, N))
    # every regime's product over all bars, then pick: a product over only the rows of a regime
    # rounds differently with the number of rows (BLAS blocking), so a forced window would change
    # the unforced bars of its twin in the last bit
    by_regime = np.stack([gaussian @ cholesky[k].T for k in range(3)])        # (K, T+1, N)
    correlated = by_regime[regime, np.arange(n_bars)]
    df = config.tail_df
    mixing = np.sqrt((df - 2.0) / rng.chisquare(df, size=n_bars))      # shared: tail dependence
    shocks = correlated * mixing[:, None]                                # (T+1, N), unit variance

    daily_vol = np.array([s.annual_vol for s in specs]) / np.sqrt(bpy)
    drift = config.alpha * np.array([s.drift for s in specs]).T / bpy     # (K, N) per day
    jump_rate = config.jumps_per_year / bpy * np.array([1.0, 1.0, 4.0])   # (K,) per day
    jump_mu = np.array([s.jump_mean for s in specs])
    has_jump = rng.random((n_bars, N)) < jump_rate[regime][:, None] * calendar.share
    jumps = np.where(has_jump, jump_mu + config.jump_scale * rng.standard_normal((n_bars, N)), 0.0)

    # sentiment at t carries the Gaussian core of the t+1 shock; its mean effect on z_{t+1} is
    # rho * E[mixing] * sentiment, which the ground truth uses
    rho = float(np.clip(config.alpha * config.sentiment_ic, 0.0, 1.0))
    sentiment = np.zeros((n_bars, N))
    sentiment[:-1] = rho * correlated[1:] + np.sqrt(1 - rho**2) * rng.standard_normal((T, N))
    sentiment[-1] = rng.standard_normal(N)
    mean_mixing = np.mean(np.sqrt((df - 2.0) / rng.chisquare(df, size=200_000)))
    sentiment_loading = rho * mean_mixing * sentiment

    returns, expected, cond_vol = _simulate_returns(
        regime, shocks, jumps, calendar.share, daily_vol, regime_vol, drift, jump_rate, jump_mu,
        config.jump_scale, config.alpha * config.momentum, *bar_garch(config.garch_alpha, config.garch_beta, m),
        transition, sentiment_loading)
    regime, returns, expected, cond_vol, sentiment = (
        a[:T] for a in (regime, returns, expected, cond_vol, sentiment))

    ohlcv = _bars(rng, specs, returns, daily_vol, regime_vol[regime], calendar)
    macro, macro_names = _macro(rng, config, specs, returns, regime, daily_vol, regime_vol, transition,
                                calendar)
    symbols = tuple(s.symbol for s in specs)
    asset_classes = tuple(s.asset_class for s in specs)
    name = config.universe if config.universe != "factor" else f"factor{N}"
    return MarketData(
        name=name if m == 1 else f"{name}_{config.bar_minutes}m",
        timestamps=calendar.timestamps, symbols=symbols, domains=tuple(s.domain for s in specs),
        asset_classes=asset_classes, ohlcv=ohlcv,
        costs=resolve_costs(symbols, asset_classes, costs), bars_per_year=float(bpy * m),
        macro=macro, macro_names=macro_names, sentiment=sentiment,
        quality=np.where(calendar.share[:T] > 0.0, 0, FORWARD_FILLED).astype(np.uint8),
        ground_truth=GroundTruth(regime=regime, regime_names=REGIMES, expected_returns=expected,
                                 conditional_vol=cond_vol, regime_correlation=correlation),
        attrs={"source": "synthetic", "seed": config.seed, "alpha": config.alpha,
               "sentiment_ic": rho, "transition": transition.tolist(),
               "forced_regimes": [[w.start, w.stop, w.regime] for w in config.forced_regimes],
               **({} if m == 1 else {"bar_minutes": config.bar_minutes})})


def _bars(rng: np.random.Generator, specs: tuple[InstrumentSpec, ...], returns: np.ndarray,
          daily_vol: np.ndarray, regime_vol_t: np.ndarray, calendar: BarCalendar) -> np.ndarray:
    """OHLCV bars consistent with the close path: the open splits each bar's return along a
    Brownian bridge (the calendar's gap share of variance), and high/low are exact draws of the
    bridge's maximum and minimum between open and close, so high >= max(open, close) >= min >= low.
    A bar with no share of the day's variance (outside a session) is flat and has no volume."""
    T, N = returns.shape
    share = calendar.share[:T]
    log_close = np.log([s.start_price for s in specs]) + np.cumsum(returns, axis=0)
    prev_close = np.vstack([log_close[:1] - returns[:1], log_close[:-1]])
    w = calendar.gap
    bar_vol = daily_vol * np.sqrt(share) * regime_vol_t[:, None]           # (T, N)
    var = bar_vol ** 2                                                     # (T, N) bar variance
    overnight = w * returns + np.sqrt(w * (1 - w) * var) * rng.standard_normal((T, N))
    log_open = prev_close + overnight
    intraday_var = (1 - w) * var
    move = log_close - log_open
    reach = lambda u: np.sqrt(move**2 - 2.0 * intraday_var * np.log(u))
    log_high = 0.5 * (log_open + log_close + reach(1.0 - rng.random((T, N))))
    log_low = 0.5 * (log_open + log_close - reach(1.0 - rng.random((T, N))))
    adv = np.array([s.notional_adv for s in specs])
    surprise = np.divide(np.abs(returns), bar_vol, out=np.zeros_like(returns), where=bar_vol > 0)
    activity = (1.0 + 2.0 * surprise) / 3.0 * regime_vol_t[:, None]
    volume = adv * share / np.exp(log_close) * activity * np.exp(0.3 * rng.standard_normal((T, N)) - 0.045)
    ohlcv = np.stack([np.exp(log_open), np.exp(log_high), np.exp(log_low), np.exp(log_close), volume], axis=-1)
    # rounding in exp() can put open or close a hair outside [low, high]
    ohlcv[..., 1] = np.maximum(ohlcv[..., 1], np.maximum(ohlcv[..., 0], ohlcv[..., 3]))
    ohlcv[..., 2] = np.minimum(ohlcv[..., 2], np.minimum(ohlcv[..., 0], ohlcv[..., 3]))
    return ohlcv


def _macro(rng: np.random.Generator, config: SyntheticConfig, specs: tuple[InstrumentSpec, ...],
           returns: np.ndarray, regime: np.ndarray, daily_vol: np.ndarray, regime_vol: np.ndarray,
           transition: np.ndarray, calendar: BarCalendar) -> tuple[np.ndarray, tuple[str, ...]]:
    """VIX-like index, short rate (%), dollar index and credit spread (%), all known at the close.
    On intraday bars the rates move per day as on daily bars (speed / m and noise / sqrt(m) per
    bar, m bars a day)."""
    T = returns.shape[0]
    m = bars_per_day(config.bar_minutes)
    symbols = [s.symbol for s in specs]
    equity = [i for i, s in enumerate(specs) if s.asset_class in ("equity_index", "equity")]
    anchor = symbols.index("SPX500") if "SPX500" in symbols else (equity[0] if equity else 0)
    # expected next-day variance of the anchor: regime mix times an EWMA of realised variance per
    # day (on intraday bars, each moving bar's squared return over its share of the day, with the
    # decay per day of daily bars)
    share = calendar.share[:T, anchor]
    moving = int((share[:m] > 0.0).sum())
    decay, gain = (0.94, 0.06) if m == 1 else (0.94 ** (1.0 / moving), 1.0 - 0.94 ** (1.0 / moving))
    ewma = np.empty(T)
    v = (daily_vol[anchor] * regime_vol[regime[0]]) ** 2
    for t in range(T):
        if share[t] > 0.0:
            v = decay * v + gain * returns[t, anchor] ** 2 / share[t]
        ewma[t] = v
    regime_var = transition[regime] @ regime_vol**2 * daily_vol[anchor] ** 2
    noise = config.macro_noise
    days = config.bars_per_year
    vix = 100 * np.sqrt(days * 0.5 * (ewma + regime_var)) * 1.1 * np.exp(noise * rng.standard_normal(T))
    rate = _ou(rng, np.array([3.0, 1.5, 0.5])[regime], 0.01 / m, 0.03 / np.sqrt(m), 2.0)
    spread = _ou(rng, np.array([0.9, 1.6, 3.0])[regime], 0.02 / m, 0.03 / np.sqrt(m), 1.0)
    weights = {"EURUSD": -0.576, "GBPUSD": -0.119, "USDJPY": 0.136}
    dollar_log = sum(w * returns[:, symbols.index(s)] for s, w in weights.items() if s in symbols)
    dollar = 100 * np.exp(np.cumsum(dollar_log + 0.001 / np.sqrt(m) * rng.standard_normal(T)))
    return np.column_stack([vix, rate, dollar, spread]), ("vix", "short_rate", "dollar_index", "credit_spread")
