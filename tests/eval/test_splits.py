"""Walk-forward and purged k-fold splits: layout by hand, no leakage, clear errors."""

import numpy as np
import pytest

from eval.splits import purged_k_fold, walk_forward_folds


def test_rolling_walk_forward_defaults_by_hand():
    folds = walk_forward_folds(500)
    # test windows start at 252, 315, 378, 441; 441 + 63 = 504 > 500, so three folds
    assert [f.test[0] for f in folds] == [252, 315, 378]
    for f in folds:
        assert f.train.size == 252 and f.test.size == 63
        assert f.train[-1] + 1 == f.test[0]
        np.testing.assert_array_equal(np.diff(f.train), 1)
    np.testing.assert_array_equal(folds[1].train, np.arange(63, 315))


def test_anchored_walk_forward_expands_from_bar_zero():
    folds = walk_forward_folds(600, in_sample=100, out_of_sample=50, step=50, anchored=True)
    assert all(f.train[0] == 0 for f in folds)
    assert [f.train.size for f in folds] == [100 + 50 * k for k in range(len(folds))]
    stitched = np.concatenate([f.test for f in folds])
    np.testing.assert_array_equal(stitched, np.arange(100, 600))   # step == oos: tiles the tail


@pytest.mark.parametrize("anchored", [False, True])
def test_purge_leaves_a_gap_so_no_training_label_reaches_the_test_window(anchored):
    horizon = 5
    folds = walk_forward_folds(1000, in_sample=200, out_of_sample=50, step=50,
                               anchored=anchored, purge=horizon)
    assert folds[0].test[0] == 205
    for f in folds:
        assert f.train.size == (f.test[0] - horizon if anchored else 200)
        assert f.train.max() + horizon < f.test.min()            # label of the last bar ends first
        assert np.intersect1d(f.train, f.test).size == 0


def test_walk_forward_errors_name_the_shortfall():
    with pytest.raises(ValueError, match="= 320 bars, but the data has 300"):
        walk_forward_folds(300, purge=5)
    with pytest.raises(ValueError, match="step must be an integer >= 1"):
        walk_forward_folds(1000, step=0)


def test_purged_k_fold_by_hand():
    folds = purged_k_fold(20, n_folds=4, purge=1, embargo=2)
    np.testing.assert_array_equal(folds[1].test, np.arange(5, 10))
    # before: bars < 5 - 1; after: bars >= 10 + 1 + 2
    np.testing.assert_array_equal(folds[1].train, np.r_[0:4, 13:20])
    np.testing.assert_array_equal(folds[0].train, np.arange(8, 20))
    np.testing.assert_array_equal(folds[3].train, np.arange(0, 14))


def test_purged_k_fold_tests_partition_the_data_without_leakage():
    purge, embargo = 3, 4
    folds = purged_k_fold(103, n_folds=5, purge=purge, embargo=embargo)
    np.testing.assert_array_equal(np.concatenate([f.test for f in folds]), np.arange(103))
    for f in folds:
        gap_before = f.test.min() - f.train[f.train < f.test.min()]
        gap_after = f.train[f.train > f.test.max()] - f.test.max()
        assert np.all(gap_before > purge)
        assert np.all(gap_after > purge + embargo)


def test_purged_k_fold_errors():
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        purged_k_fold(100, n_folds=1)
    with pytest.raises(ValueError, match="fold 0 .* has no training bars"):
        purged_k_fold(10, n_folds=2, purge=5)
