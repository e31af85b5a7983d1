"""Rolling covariance and correlation of returns, and the market-wide summaries built on them.

Estimators follow scikit-learn's covariance API (`fit(X)` on a (W, N) window of returns sets
`covariance_`): the sample estimator and Ledoit-Wolf are scikit-learn's own; `EWMACovariance`
adds the RiskMetrics exponentially weighted one. `rolling_summaries` re-estimates every `stride`
bars on the `window` bars ending there and holds the result until the next estimate, so the value
at t uses returns up to t only; rows before the first full window are NaN.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.covariance import EmpiricalCovariance, LedoitWolf

from features.indicators import check_finite, check_window

SUMMARY_NAMES: tuple[str, ...] = ("corr_mean", "corr_max", "pc1_share", "log_condition")


class EWMACovariance(BaseEstimator):
    """Exponentially weighted covariance of a window, newest row weighted most, around the
    weighted mean; weights halve every `halflife` rows."""

    def __init__(self, halflife: float = 20.0) -> None:
        self.halflife = halflife

    def fit(self, X: np.ndarray, y: None = None) -> EWMACovariance:
        X = np.asarray(X, dtype=np.float64)                          # (W, N)
        weights = 0.5 ** (np.arange(len(X))[::-1] / self.halflife)   # (W,)
        weights /= weights.sum()
        self.location_ = weights @ X                                 # (N,)
        centred = X - self.location_
        self.covariance_ = (centred * weights[:, None]).T @ centred  # (N, N)
        return self


def make_estimator(name: str, ewma_halflife: float = 20.0) -> BaseEstimator:
    """The covariance estimator called `name`: 'ledoit_wolf', 'sample' or 'ewma'."""
    # no precision matrix: only `covariance_` is read, and its pseudo-inverse would cost an
    # eigendecomposition per window (most of the time of a 500-instrument estimate)
    estimators = {"ledoit_wolf": lambda: LedoitWolf(store_precision=False),
                  "sample": lambda: EmpiricalCovariance(store_precision=False),
                  "ewma": lambda: EWMACovariance(ewma_halflife)}
    if name not in estimators:
        raise ValueError(f"unknown covariance estimator '{name}' (one of {sorted(estimators)})")
    return estimators[name]()


def correlation_from_covariance(covariance: np.ndarray) -> np.ndarray:
    """(N, N) correlation matrix; instruments with zero variance get zero correlations."""
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))       # (N,)
    scale = np.where(std > 0, 1.0 / np.where(std > 0, std, 1.0), 0.0)
    corr = covariance * scale[:, None] * scale[None, :]
    np.fill_diagonal(corr, 1.0)
    return corr


def is_psd(matrix: np.ndarray, tol: float = 1e-10) -> bool:
    """Whether a symmetric matrix is positive semi-definite up to `tol` times its scale."""
    if not np.allclose(matrix, matrix.T):
        return False
    eigenvalues = np.linalg.eigvalsh(matrix)
    return bool(eigenvalues[0] >= -tol * max(1.0, abs(eigenvalues[-1])))


def nearest_psd(matrix: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """The nearest symmetric PSD matrix in Frobenius norm: symmetrise, then clip eigenvalues at
    `floor` (Higham 1988)."""
    symmetric = 0.5 * (matrix + matrix.T)
    eigenvalues, vectors = np.linalg.eigh(symmetric)
    repaired = (vectors * np.maximum(eigenvalues, floor)) @ vectors.T
    return 0.5 * (repaired + repaired.T)


def summarize(covariance: np.ndarray) -> np.ndarray:
    """(4,) summaries of one covariance matrix: mean and max pairwise correlation, share of the
    variance on the first principal component, and log10 of the condition number."""
    N = len(covariance)
    corr = correlation_from_covariance(covariance)
    # the nearest PSD matrix has the same eigenvalues with the negative ones set to 0
    eigenvalues = np.clip(np.linalg.eigvalsh(0.5 * (covariance + covariance.T)), 0.0, None)
    top, bottom = eigenvalues[-1], max(eigenvalues[0], 1e-300)
    off_diagonal = corr[~np.eye(N, dtype=bool)] if N > 1 else np.zeros(1)
    pc1 = top / eigenvalues.sum() if eigenvalues.sum() > 0 else 1.0
    return np.array([off_diagonal.mean(), off_diagonal.max(), pc1, np.log10(max(top, 1e-300) / bottom)])


def rolling_summaries(returns: np.ndarray, estimator: BaseEstimator, window: int,
                      stride: int = 1) -> np.ndarray:
    """(T, 4) `SUMMARY_NAMES` of `estimator` fitted on each (window, N) block of `returns`
    ending at t = window - 1 + k * stride, held until the next estimate; NaN before the first."""
    T = len(returns)
    check_window(window, T, "rolling_summaries")
    if stride < 1:
        raise ValueError(f"rolling_summaries: stride must be >= 1, got {stride}")
    check_finite(returns, "rolling_summaries returns")
    out = np.full((T, len(SUMMARY_NAMES)), np.nan)
    for end in range(window - 1, T, stride):
        covariance = estimator.fit(returns[end - window + 1:end + 1]).covariance_
        out[end:end + stride] = summarize(covariance)
    return out
