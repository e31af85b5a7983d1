"""Causal rolling z-score normalisation of feature tensors.

Each value is standardised with the mean and standard deviation of the same feature over the
last `window` bars up to and including t, so no statistic comes from the future and nothing is
fitted on any split. Values without `min_periods` finite observations in their window (warm-up)
and NaN inputs become 0, the mean of a standardised feature; results are clipped to +-`clip`.
The output is float32, the dtype of network inputs, written by the kernel directly so that a
(T, N, F) tensor of 500 instruments is never copied on the way.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _rolling_zscore(x: np.ndarray, window: int, min_periods: int, clip: float) -> np.ndarray:
    T, C = x.shape
    out = np.zeros((T, C), dtype=np.float32)
    total = np.zeros(C)
    total2 = np.zeros(C)
    count = np.zeros(C, dtype=np.int64)
    for t in range(T):
        for c in range(C):
            value = x[t, c]
            if np.isfinite(value):
                total[c] += value
                total2[c] += value * value
                count[c] += 1
            if t >= window:
                old = x[t - window, c]
                if np.isfinite(old):
                    total[c] -= old
                    total2[c] -= old * old
                    count[c] -= 1
            if count[c] >= min_periods and np.isfinite(value):
                mean = total[c] / count[c]
                var = (total2[c] - count[c] * mean * mean) / max(count[c] - 1, 1)
                std = np.sqrt(var) if var > 0 else 0.0
                if std > 1e-12 * max(1.0, abs(mean)):
                    out[t, c] = min(max((value - mean) / std, -clip), clip)
    return out


def rolling_zscore(values: np.ndarray, window: int = 252, min_periods: int = 20,
                   clip: float = 5.0) -> np.ndarray:
    """Causally standardised float32 copy of `values` (T, ...) along time, every column on its own."""
    if window < 2 or not 1 <= min_periods <= window:
        raise ValueError(f"rolling_zscore: need window >= 2 and 1 <= min_periods <= window, "
                         f"got window={window}, min_periods={min_periods}")
    flat = np.ascontiguousarray(values, dtype=np.float64).reshape(len(values), -1)   # (T, C)
    return _rolling_zscore(flat, window, min_periods, clip).reshape(values.shape)
