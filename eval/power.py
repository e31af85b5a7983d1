"""Statistics over test universes x training seeds: means, intervals and paired differences.

A policy's score on universe u of a run with training seed s is one cell of a (U, S) matrix.
Both factors are random draws (universes from the generator, seeds from training's randomness)
and they are crossed: every seed meets every universe. The interval of the mean must count both
sources of variance. With the two-way random-effects model y_us = m + a_u + b_s + e_us, the
variance of the grand mean is s_a^2 / U + s_b^2 / S + s_e^2 / (US); from the ANOVA mean squares
(MS_u = S var(row means), MS_s = U var(column means)) its conservative estimate is
(MS_u + MS_s) / (US) (it drops -MS_e, so it never falls below zero), referred to a t distribution
with Satterthwaite's degrees of freedom (Satterthwaite 1946). With one seed (or one universe)
it is the ordinary t-interval over the other factor. A paired difference against a reference
policy is the same statistic on the matrix of cell-by-cell differences (the same universe and
seed), which removes the universe and seed effects the two policies share; its p-value is the
two-sided t-test of a zero mean. With 5 seeds the seed term has 4 degrees of freedom, so
intervals are honest but wide: more seeds narrow them more than more universes do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class CrossedMean:
    """The mean of a (U, S) matrix with its t-interval and the p-value of a zero mean."""

    mean: float
    low: float
    high: float
    p_value: float
    dof: float                          # Satterthwaite degrees of freedom
    cells: tuple[int, int]              # (universes, seeds)


def crossed_mean(values: np.ndarray, confidence: float = 0.95) -> CrossedMean:
    """Mean of `values` (U, S) with its two-way random-effects t-interval (module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.size < 2:
        raise ValueError(f"need a (universes, seeds) matrix of 2 or more cells, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("crossed_mean: the matrix holds NaN or inf (a missing run or universe?)")
    U, S = values.shape
    mean = float(values.mean())
    terms = [(S * values.mean(axis=1).var(ddof=1), U - 1) if U > 1 else (0.0, 0),     # MS_u, dof
             (U * values.mean(axis=0).var(ddof=1), S - 1) if S > 1 else (0.0, 0)]     # MS_s, dof
    total = sum(ms for ms, _ in terms)
    if total <= 0.0:                     # every cell equal: no spread to test against
        return CrossedMean(mean, mean, mean, 1.0 if mean == 0.0 else 0.0, np.inf, (U, S))
    dof = total**2 / sum(ms**2 / d for ms, d in terms if d > 0)
    error = np.sqrt(total / (U * S))
    half = stats.t.ppf(0.5 + confidence / 2.0, dof) * error
    p_value = float(2.0 * stats.t.sf(abs(mean) / error, dof))
    return CrossedMean(mean, mean - half, mean + half, p_value, float(dof), (U, S))


def score_matrix(walks: pd.DataFrame, policy: str, metric: str = "sharpe") -> pd.DataFrame:
    """(universe x seed) scores of `policy` from the stacked walks of a group of runs (columns
    seed, universe, policy and the metric)."""
    rows = walks[walks["policy"] == policy]
    if rows.empty:
        raise KeyError(f"no universe walks of policy '{policy}'")
    matrix = rows.pivot_table(index="universe", columns="seed", values=metric, aggfunc="first")
    if matrix.isna().any().any():
        missing = matrix.columns[matrix.isna().any()].tolist()
        raise ValueError(f"policy '{policy}': runs of seeds {missing} lack some universes")
    return matrix


def paired_table(walks: pd.DataFrame, policies: list[str], reference: str, metric: str = "sharpe",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Per policy: the mean `metric` over universes x seeds with its interval, and the paired
    difference from `reference` (policy minus reference) with its interval and p-value."""
    base = score_matrix(walks, reference, metric)
    records = {}
    for policy in policies:
        matrix = score_matrix(walks, policy, metric).reindex(index=base.index, columns=base.columns)
        level = crossed_mean(matrix.to_numpy(), confidence)
        record = {"mean": level.mean, "low": level.low, "high": level.high,
                  "universes": level.cells[0], "seeds": level.cells[1]}
        if policy != reference:
            diff = crossed_mean((matrix - base).to_numpy(), confidence)
            record.update(diff=diff.mean, diff_low=diff.low, diff_high=diff.high, p_value=diff.p_value)
        records[policy] = record
    return pd.DataFrame.from_dict(records, orient="index")
