"""Time-series splits without leakage: walk-forward folds and purged k-fold cross-validation.

Leakage control follows López de Prado (2018), Advances in Financial Machine Learning, ch. 7.
`purge` is the label horizon h in bars (a training bar's label may use bars up to h after it):
training bars within h bars of a test window are dropped, so that no training label uses a test
bar and no test label uses a training bar (§7.4.1). `embargo` drops a further number of training
bars after each test window, because serially correlated features let the bars just after a test
window echo it (§7.4.2). Bars are integer positions 0 .. n_bars - 1 on the time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fold:
    """One split: sorted bar indices to fit on (`train`, in-sample) and to score on (`test`)."""

    train: np.ndarray
    test: np.ndarray


def _check_count(name: str, value: int, minimum: int) -> None:
    if int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def walk_forward_folds(n_bars: int, in_sample: int = 252, out_of_sample: int = 63, step: int = 63,
                       anchored: bool = False, purge: int = 0) -> list[Fold]:
    """Walk-forward folds: fit on the past, score on the next `out_of_sample` bars, move on.

    Fold k scores bars [s_k, s_k + out_of_sample), s_k = in_sample + purge + k * step. It fits on
    the `in_sample` bars that end `purge` bars before s_k (rolling), or on every bar from 0 up to
    there (anchored, an expanding window). Folds stop at the last whole out-of-sample window; the
    trailing bars that do not fill one are left unscored. With step == out_of_sample the scored
    windows tile the tail of the data and can be stitched into one out-of-sample track record.

    There is no embargo here: it drops training bars that follow a test window, and a
    walk-forward fold only trains on bars before its test window.
    """
    for name, value, minimum in (("n_bars", n_bars, 1), ("in_sample", in_sample, 1),
                                 ("out_of_sample", out_of_sample, 1), ("step", step, 1),
                                 ("purge", purge, 0)):
        _check_count(name, value, minimum)
    needed = in_sample + purge + out_of_sample
    if needed > n_bars:
        raise ValueError(f"walk-forward needs in_sample + purge + out_of_sample = {in_sample} + "
                         f"{purge} + {out_of_sample} = {needed} bars, but the data has {n_bars}")
    folds = []
    for test_start in range(in_sample + purge, n_bars - out_of_sample + 1, step):
        train_stop = test_start - purge
        train_start = 0 if anchored else train_stop - in_sample
        folds.append(Fold(train=np.arange(train_start, train_stop),
                          test=np.arange(test_start, test_start + out_of_sample)))
    return folds


def purged_k_fold(n_bars: int, n_folds: int = 5, purge: int = 0, embargo: int = 0) -> list[Fold]:
    """K-fold cross-validation on contiguous test blocks, purged and embargoed (LdP 2018, §7.4).

    Test blocks are consecutive and as equal in size as `n_bars` allows. For a test block
    [a, b), training keeps bars before a - purge and from b + purge + embargo on.
    """
    _check_count("n_folds", n_folds, 2)
    _check_count("n_bars", n_bars, n_folds)
    _check_count("purge", purge, 0)
    _check_count("embargo", embargo, 0)
    bars = np.arange(n_bars)
    folds = []
    for k, test in enumerate(np.array_split(bars, n_folds)):
        start, stop = test[0], test[-1] + 1
        train = bars[(bars < start - purge) | (bars >= stop + purge + embargo)]
        if train.size == 0:
            raise ValueError(f"fold {k} (test bars {start}..{stop - 1}) has no training bars left "
                             f"after purge={purge} and embargo={embargo} on {n_bars} bars")
        folds.append(Fold(train=train, test=test))
    return folds
