"""Technical indicators in Numba, batched over instruments: every input and output is (T, N).

Conventions follow TA-Lib, so that values match it to rounding at any price scale: the first
`lookback` rows are NaN (warm-up), moving averages are running sums in TA-Lib's order, EMAs are
seeded with the simple average of their first `window` inputs, and RSI and ATR use Wilder
smoothing seeded the same way, with no absolute thresholds. Standard deviations are accurate to
rounding relative to the window's own spread, and exactly 0 on flat windows. Each kernel walks
time in the outer loop and instruments in the inner one, so a (T, N) array is read row by row.
Every value at t uses rows <= t only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NAN = np.nan


def check_window(window: int, n_bars: int, name: str) -> None:
    """Raise ValueError when `window` is not a positive number of bars within the data."""
    if window < 1:
        raise ValueError(f"{name}: window must be >= 1 bar, got {window}")
    if window > n_bars:
        raise ValueError(f"{name}: window of {window} bars is longer than the data ({n_bars} bars)")


def check_finite(values: np.ndarray, name: str) -> None:
    """Raise ValueError naming the first (row, column) that is NaN or infinite."""
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0][:2]
        raise ValueError(f"{name}: input is NaN or infinite at row {row}, column {col}; "
                         "fill or drop it before computing indicators")


@njit(cache=True)
def _sma(x: np.ndarray, window: int) -> np.ndarray:
    T, N = x.shape
    out = np.full((T, N), NAN)
    total = np.zeros(N)
    for t in range(T):
        for i in range(N):
            total[i] += x[t, i]
            if t >= window - 1:
                out[t, i] = total[i] / window
                total[i] -= x[t - window + 1, i]
    return out


@njit(cache=True)
def _ema_seeded(x: np.ndarray, window: int, k: float, seed_end: int) -> np.ndarray:
    """EMA seeded at row `seed_end` with the mean of rows (seed_end - window, seed_end]."""
    T, N = x.shape
    out = np.full((T, N), NAN)
    if seed_end >= T:
        return out
    prev = np.zeros(N)
    for t in range(seed_end - window + 1, seed_end + 1):
        for i in range(N):
            prev[i] += x[t, i]
    for i in range(N):
        prev[i] /= window
        out[seed_end, i] = prev[i]
    for t in range(seed_end + 1, T):
        for i in range(N):
            prev[i] = (x[t, i] - prev[i]) * k + prev[i]
            out[t, i] = prev[i]
    return out


@njit(cache=True)
def _wilder_rsi(close: np.ndarray, window: int) -> np.ndarray:
    T, N = close.shape
    out = np.full((T, N), NAN)
    gain = np.zeros(N)
    loss = np.zeros(N)
    inverse = 1.0 / window
    for t in range(1, T):
        for i in range(N):
            diff = close[t, i] - close[t - 1, i]
            up = diff if diff > 0 else 0.0
            down = -diff if diff < 0 else 0.0
            if t < window:                       # summing the seed window
                gain[i] += up
                loss[i] += down
                continue
            if t == window:                      # seed: simple averages of the first moves
                gain[i] = (gain[i] + up) / window
                loss[i] = (loss[i] + down) / window
            else:                                # Wilder smoothing, times 1 / window as TA-Lib
                gain[i] = (gain[i] * (window - 1) + up) * inverse
                loss[i] = (loss[i] * (window - 1) + down) * inverse
            total = gain[i] + loss[i]               # 0 only if no move at all: TA-Lib gives 0
            out[t, i] = 100.0 * (gain[i] / total) if total != 0.0 else 0.0
    return out


@njit(cache=True)
def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    T, N = close.shape
    out = np.full((T, N), NAN)
    for t in range(1, T):
        for i in range(N):
            greatest = high[t, i] - low[t, i]
            up = abs(close[t - 1, i] - high[t, i])
            down = abs(close[t - 1, i] - low[t, i])
            greatest = max(greatest, up)
            greatest = max(greatest, down)
            out[t, i] = greatest
    return out


@njit(cache=True)
def _wilder_average(x: np.ndarray, window: int, first: int) -> np.ndarray:
    """Wilder smoothing of x from row `first`: seeded with the mean of x[first:first+window]."""
    T, N = x.shape
    out = np.full((T, N), NAN)
    avg = np.zeros(N)
    seed_end = first + window - 1
    for t in range(first, T):
        for i in range(N):
            if t < seed_end:
                avg[i] += x[t, i]
            elif t == seed_end:
                avg[i] = (avg[i] + x[t, i]) / window
                out[t, i] = avg[i]
            else:
                avg[i] = (avg[i] * (window - 1) + x[t, i]) / window
                out[t, i] = avg[i]
    return out


@njit(cache=True)
def _obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    T, N = close.shape
    out = np.empty((T, N))
    for i in range(N):
        out[0, i] = volume[0, i]
    for t in range(1, T):
        for i in range(N):
            if close[t, i] > close[t - 1, i]:
                out[t, i] = out[t - 1, i] + volume[t, i]
            elif close[t, i] < close[t - 1, i]:
                out[t, i] = out[t - 1, i] - volume[t, i]
            else:
                out[t, i] = out[t - 1, i]
    return out


# The running sums of `_rolling_std` take at most ~4 * window roundings of size <= eps * peak
# (peak: their largest sum of squared deviations since the rebuild), so the variance they give is
# off by at most ~4 * eps * peak (9e-16 * peak). Where the variance is below RECOMPUTE_BELOW *
# peak, that could exceed 1e-10 of it (with a margin of 4), and the window is recomputed.
RECOMPUTE_BELOW = 4e-5


@njit(cache=True, error_model="numpy")
def _window_variance(x: np.ndarray, t: int, i: int, window: int) -> float:
    """Population variance of x[t - window + 1 : t + 1, i] from deviations to x[t, i]: these are
    exact (Sterbenz) for nearby values, so the result keeps full relative precision at any price
    scale and through near-flat stretches, and is exactly 0 on a flat window."""
    anchor = x[t, i]
    total = 0.0
    total2 = 0.0
    for k in range(t - window + 1, t + 1):
        deviation = x[k, i] - anchor
        total += deviation
        total2 += deviation * deviation
    mean = total / window
    return max(total2 / window - mean * mean, 0.0)


@njit(cache=True, error_model="numpy")
def _rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """(T, N) population standard deviation over `window` rows, as accurate as TA-Lib's STDDEV
    (exactly 0 on flat windows). Running sums of deviations to an anchor, rebuilt from the window
    every `window` rows, so rounding never accumulates from far-away prices; a window whose
    variance is too small for them to resolve is recomputed by `_window_variance`."""
    T, N = x.shape
    out = np.full((T, N), NAN)
    anchor = np.zeros(N)
    total = np.zeros(N)
    total2 = np.zeros(N)
    peak = np.zeros(N)                                    # largest total2 since the rebuild
    for t in range(window - 1, T):
        first = t - window + 1
        if first % window == 0:                           # rebuild around the window's last value
            for i in range(N):
                anchor[i] = x[t, i]
                total[i] = 0.0
                total2[i] = 0.0
            for k in range(first, t + 1):
                for i in range(N):
                    deviation = x[k, i] - anchor[i]
                    total[i] += deviation
                    total2[i] += deviation * deviation
            for i in range(N):
                peak[i] = total2[i]
        else:                                             # slide: add row t, drop row first - 1
            for i in range(N):
                new = x[t, i] - anchor[i]
                old = x[first - 1, i] - anchor[i]
                total[i] += new - old
                total2[i] += new * new - old * old
                peak[i] = max(peak[i], total2[i])
        for i in range(N):
            mean = total[i] / window
            var = total2[i] / window - mean * mean
            if var <= RECOMPUTE_BELOW * peak[i]:
                var = _window_variance(x, t, i, window)
            out[t, i] = np.sqrt(var)
    return out


@njit(cache=True)
def _lagged_ratio(x: np.ndarray, lag: int) -> np.ndarray:
    T, N = x.shape
    out = np.full((T, N), NAN)
    for t in range(lag, T):
        for i in range(N):
            out[t, i] = x[t, i] / x[t - lag, i]
    return out


def sma(x: np.ndarray, window: int) -> np.ndarray:
    """(T, N) simple moving average; rows < window - 1 are NaN."""
    check_window(window, len(x), "sma")
    check_finite(x, "sma")
    return _sma(x, window)


def ema(x: np.ndarray, window: int) -> np.ndarray:
    """(T, N) exponential moving average, k = 2 / (window + 1), seeded with the first SMA."""
    check_window(window, len(x), "ema")
    check_finite(x, "ema")
    return _ema_seeded(x, window, 2.0 / (window + 1), window - 1)


def macd(close: np.ndarray, fast: int = 12, slow: int = 26,
         signal: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, N) MACD line, signal line and histogram, as TA-Lib computes them: both EMAs are seeded
    at row slow - 1 (the fast one with the mean of its last `fast` inputs there), and all three
    outputs start at row slow + signal - 2."""
    if not 1 < fast < slow:
        raise ValueError(f"macd: need 1 < fast < slow, got fast={fast}, slow={slow}")
    check_window(slow + signal - 1, len(close), "macd")
    check_finite(close, "macd")
    line = (_ema_seeded(close, fast, 2.0 / (fast + 1), slow - 1)
            - _ema_seeded(close, slow, 2.0 / (slow + 1), slow - 1))
    signal_line = _ema_seeded(line, signal, 2.0 / (signal + 1), slow + signal - 2)
    line[:slow + signal - 2] = np.nan
    return line, signal_line, line - signal_line


def rsi(close: np.ndarray, window: int = 14) -> np.ndarray:
    """(T, N) relative strength index in [0, 100], Wilder smoothing; rows < window are NaN."""
    check_window(window + 1, len(close), "rsi")
    check_finite(close, "rsi")
    return _wilder_rsi(close, window)


@njit(cache=True, error_model="numpy")
def _bollinger(x: np.ndarray, mean: np.ndarray, std: np.ndarray,
               width: float) -> tuple[np.ndarray, np.ndarray]:
    """%B and bandwidth of bands at `width` standard deviations around the moving average, with
    TA-Lib's operations: upper, lower = middle +- width * std."""
    T, N = x.shape
    percent_b = np.full((T, N), NAN)
    bandwidth = np.full((T, N), NAN)
    for t in range(T):
        for i in range(N):
            middle = mean[t, i]
            half = width * std[t, i]
            upper, lower = middle + half, middle - half
            span = upper - lower
            percent_b[t, i] = 0.5 if span == 0.0 else (x[t, i] - lower) / span
            bandwidth[t, i] = span / middle
    return percent_b, bandwidth


def bollinger(close: np.ndarray, window: int = 20,
              width: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) %B = (close - lower) / (upper - lower) and bandwidth = (upper - lower) / middle of
    bands at `width` population standard deviations around the SMA (TA-Lib's BBANDS). %B is 0.5
    where the band has zero width."""
    check_window(window, len(close), "bollinger")
    check_finite(close, "bollinger")
    return _bollinger(close, _sma(close, window), _rolling_std(close, window), float(width))


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """(T, N) true range; row 0 is NaN (no previous close)."""
    for values, name in ((high, "high"), (low, "low"), (close, "close")):
        check_finite(values, f"true_range {name}")
    return _true_range(high, low, close)


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, window: int = 14) -> np.ndarray:
    """(T, N) average true range, Wilder smoothing seeded with the mean of the first `window`
    true ranges; rows < window are NaN."""
    check_window(window + 1, len(close), "atr")
    return _wilder_average(true_range(high, low, close), window, 1)


def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """(T, N) on-balance volume, starting from the first bar's volume."""
    check_finite(close, "obv close")
    check_finite(volume, "obv volume")
    return _obv(close, volume)


def rolling_vwap(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
                 window: int = 20) -> np.ndarray:
    """(T, N) volume-weighted average typical price (high + low + close) / 3 over `window` bars."""
    typical = (high + low + close) / 3.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return sma(typical * volume, window) / sma(volume, window)


def roc(close: np.ndarray, horizon: int) -> np.ndarray:
    """(T, N) rate of change close_t / close_{t-h} - 1 (TA-Lib's ROC / 100)."""
    check_window(horizon + 1, len(close), "roc")
    check_finite(close, "roc")
    return _lagged_ratio(close, horizon) - 1.0


def momentum(close: np.ndarray, horizon: int) -> np.ndarray:
    """(T, N) momentum close_t - close_{t-h} (TA-Lib's MOM)."""
    check_window(horizon + 1, len(close), "momentum")
    check_finite(close, "momentum")
    out = np.full_like(close, np.nan)
    out[horizon:] = close[horizon:] - close[:-horizon]
    return out


def close_to_close_vol(close: np.ndarray, window: int, bars_per_year: float) -> np.ndarray:
    """(T, N) annualised realised volatility: root mean square of log returns over `window`."""
    check_window(window + 1, len(close), "close_to_close_vol")
    squared = np.zeros_like(close)
    squared[1:] = np.log(close[1:] / close[:-1]) ** 2
    out = np.sqrt(np.maximum(sma(squared, window), 0.0) * bars_per_year)      # a flat window rounds to -0
    out[:window] = np.nan
    return out


def parkinson_vol(high: np.ndarray, low: np.ndarray, window: int,
                  bars_per_year: float) -> np.ndarray:
    """(T, N) annualised Parkinson volatility from the high-low range over `window` bars."""
    squared = np.log(high / low) ** 2 / (4.0 * np.log(2.0))
    return np.sqrt(np.maximum(sma(squared, window), 0.0) * bars_per_year)


def garman_klass_vol(open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray,
                     window: int, bars_per_year: float) -> np.ndarray:
    """(T, N) annualised Garman-Klass volatility over `window` bars (negative estimates are 0)."""
    squared = (0.5 * np.log(high / low) ** 2
               - (2.0 * np.log(2.0) - 1.0) * np.log(close / open_) ** 2)
    return np.sqrt(np.maximum(sma(squared, window), 0.0) * bars_per_year)


def volume_zscore(volume: np.ndarray, window: int = 20) -> np.ndarray:
    """(T, N) abnormal volume: z-score of log(1 + volume) against its last `window` bars
    (including t); 0 where the window's volume is constant."""
    log_volume = np.log1p(volume)
    mean = sma(log_volume, window)
    std = _rolling_std(log_volume, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(std > 0, (log_volume - mean) / std, np.where(np.isnan(mean), np.nan, 0.0))
