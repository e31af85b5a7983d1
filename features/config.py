"""`FeaturesConfig`: the hydra `features/` group, one plain dataclass per feature family."""

from __future__ import annotations

from dataclasses import dataclass, field

from envs.lake import DEFAULT_ROOT


@dataclass
class IndicatorConfig:
    """Technical indicator windows, in bars (defaults follow the usual TA-Lib settings)."""

    ma_windows: list[int] = field(default_factory=lambda: [5, 10, 20, 50, 200])
    macd: list[int] = field(default_factory=lambda: [12, 26, 9])        # fast, slow, signal
    rsi_window: int = 14
    bollinger_window: int = 20
    bollinger_width: float = 2.0                                         # in standard deviations
    atr_window: int = 14
    vwap_window: int = 20
    obv_window: int = 20                                                 # OBV change horizon
    horizons: list[int] = field(default_factory=lambda: [5, 20, 60])     # ROC and momentum
    volatility_windows: list[int] = field(default_factory=lambda: [20, 60])
    volume_window: int = 20


@dataclass
class CovarianceConfig:
    """Rolling covariance summaries: estimator, window and the stride between re-estimates."""

    estimator: str = "ledoit_wolf"          # 'ledoit_wolf', 'sample' or 'ewma'
    window: int = 60
    stride: int = 5                         # re-estimate every `stride` bars, hold in between
    ewma_halflife: float = 20.0             # used by the 'ewma' estimator


@dataclass
class MacroConfig:
    """Macro transforms; monthly series become visible `publication_lag_days` after period end."""

    publication_lag_days: int = 7
    change_window: int = 21
    zscore_window: int = 63


@dataclass
class SentimentConfig:
    """Text sentiment from a local FinBERT-style classifier, or the market's numeric channel.

    With `model_path` and `texts_path` set, the messages in `texts_path` (CSV or Parquet with
    columns timestamp, symbol, text) are scored by the model; otherwise the market's own
    sentiment channel (if any) goes through the same daily aggregation.
    """

    model_path: str = ""
    texts_path: str = ""
    keywords: dict[str, str] = field(default_factory=dict)   # keyword -> symbol
    batch_size: int = 32
    max_length: int = 64
    ewma_halflife: float = 5.0
    momentum_window: int = 5
    attention_window: int = 60


@dataclass
class RegimeConfig:
    """Gaussian HMM regimes: candidate state counts (chosen by BIC) and feature smoothing."""

    min_states: int = 2
    max_states: int = 4
    smoothing_window: int = 10               # bars in the return and volatility inputs
    n_iter: int = 200
    n_init: int = 3                          # EM runs per state count; the most likely is kept
    seed: int = 0


@dataclass
class NormalizationConfig:
    """Causal rolling z-score: statistics over the last `window` bars up to and including t."""

    window: int = 252
    min_periods: int = 20
    clip: float = 5.0


@dataclass
class TimeframeConfig:
    """Multiple timeframes (off while `bars` is empty): a compact indicator set on coarser bars of
    `bars[k]` base bars each, seen only once a coarse bar has closed, and the pattern library's
    signals on the base and every coarse timeframe with their agreement (`features.timeframes`)."""

    bars: list[int] = field(default_factory=list)  # e.g. [6, 24]: 30 min and 2 h on 5-min bars
    window: int = 20                # coarse bars: indicator windows; breakouts and bands: range
    ema_fast: int = 10              # trend continuation: the trend is the fast EMA against the slow
    ema_slow: int = 30
    trend_persist: int = 3          # bars the trend must have held
    volume_ratio: float = 1.5       # breakout: volume above this times the range's mean volume
    band_width: float = 2.0         # band reversion: Bollinger width, in standard deviations
    rsi_window: int = 14
    rsi_low: float = 30.0
    rsi_high: float = 70.0


@dataclass
class FeaturesConfig:
    """All feature families and the ablation switches `sentiment`, `regime` and `timeframes`."""

    sentiment: bool = True
    regime: bool = True
    indicators: IndicatorConfig = field(default_factory=IndicatorConfig)
    covariance: CovarianceConfig = field(default_factory=CovarianceConfig)
    macro: MacroConfig = field(default_factory=MacroConfig)
    sentiment_model: SentimentConfig = field(default_factory=SentimentConfig)
    regimes: RegimeConfig = field(default_factory=RegimeConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    timeframes: TimeframeConfig = field(default_factory=TimeframeConfig)
    cache: bool = True
    cache_root: str = str(DEFAULT_ROOT)      # the data lake's root ($HMARL_DATA_LAKE or data_lake)
