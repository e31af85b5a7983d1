"""The causal rolling z-score: pandas' rolling statistics, warm-up zeros, clipping, causality."""

import numpy as np
import pandas as pd
import pytest

from features.normalize import rolling_zscore


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((400, 3)) * [1.0, 10.0, 1000.0] + [0.0, 5.0, -1e4]    # (T, C)
    x[:30, 1] = np.nan                                                           # a late start
    return x


def test_matches_pandas_rolling_mean_and_sample_std(values):
    z = rolling_zscore(values, window=50, min_periods=10, clip=1e9)
    rolling = pd.DataFrame(values).rolling(50, min_periods=10)
    expected = ((pd.DataFrame(values) - rolling.mean()) / rolling.std()).fillna(0.0).to_numpy()
    assert z.dtype == np.float32 and z.shape == values.shape
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-5)
    assert (z[:9] == 0).all() and (z[:39, 1] == 0).all()        # warm-up: fewer than 10 values


def test_clips_and_leaves_constant_columns_at_zero(values):
    spiky = values.copy()
    spiky[200, 0] = 1e6
    z = rolling_zscore(spiky, window=50, min_periods=10, clip=3.0)
    assert z[200, 0] == 3.0 and np.abs(z).max() <= 3.0
    assert (rolling_zscore(np.full((100, 2), 7.5), 20, 5) == 0).all()


def test_tensor_columns_are_independent_and_causal(values):
    tensor = values.reshape(400, 1, 3).repeat(2, axis=1)                         # (T, N, F)
    z = rolling_zscore(tensor, 60, 20)
    np.testing.assert_array_equal(z[:, 0], rolling_zscore(values, 60, 20))
    for t in (25, 90, 333):
        np.testing.assert_array_equal(rolling_zscore(tensor[:t + 1], 60, 20), z[:t + 1])


def test_bad_windows_raise_clear_errors(values):
    with pytest.raises(ValueError, match="min_periods=80"):
        rolling_zscore(values, window=50, min_periods=80)
    with pytest.raises(ValueError, match="window=1"):
        rolling_zscore(values, window=1, min_periods=1)
