"""eval.power: the two-way random-effects interval's coverage and size over crossed universes x
seeds, and the paired table's differences."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from eval.power import crossed_mean, paired_table, score_matrix


def crossed_draw(rng: np.random.Generator, universes: int, seeds: int, mean: float = 0.0) -> np.ndarray:
    """Scores with a universe effect, a seed effect and noise: the structure of test universes."""
    return (mean + rng.normal(0, 0.5, (universes, 1)) + rng.normal(0, 0.3, (1, seeds))
            + rng.normal(0, 0.4, (universes, seeds)))


def test_one_seed_reduces_to_the_one_sample_t_test():
    values = np.random.default_rng(0).normal(0.2, 2.0, (40, 1))
    result = crossed_mean(values)
    reference = stats.ttest_1samp(values[:, 0], 0.0)
    low, high = reference.confidence_interval(0.95)
    assert (result.mean, result.low, result.high) == pytest.approx((values.mean(), low, high))
    assert result.p_value == pytest.approx(reference.pvalue) and result.dof == pytest.approx(39)


def test_intervals_cover_the_true_mean_of_crossed_effects():
    """Both factors random: an interval over universes alone under-covers (the seed effect is
    shared by every universe); the crossed interval covers at least nominally."""
    rng = np.random.default_rng(2)
    draws = [crossed_draw(rng, 16, 5, mean=0.3) for _ in range(400)]
    covered = [crossed_mean(v).low <= 0.3 <= crossed_mean(v).high for v in draws]
    universes_only = [crossed_mean(v.mean(axis=1, keepdims=True)) for v in draws]
    assert np.mean(covered) >= 0.94
    assert np.mean([c.low <= 0.3 <= c.high for c in universes_only]) < 0.85


def test_the_test_holds_its_size_under_the_null_and_rejects_a_real_difference():
    rng = np.random.default_rng(3)
    null = [crossed_mean(crossed_draw(rng, 16, 5)).p_value for _ in range(400)]
    assert np.mean(np.array(null) < 0.05) <= 0.06
    assert crossed_mean(crossed_draw(rng, 16, 5, mean=1.5)).p_value < 0.01


def test_a_bad_matrix_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        crossed_mean(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="matrix"):
        crossed_mean(np.ones(5))


def walks_frame(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for seed in range(3):
        for universe in range(8):
            base = rng.normal()
            for policy, shift in (("hierarchy", 0.5), ("equal_weight", 0.0), ("random", -1.0)):
                rows.append({"seed": seed, "universe": universe, "policy": policy,
                             "sharpe": base + shift + 0.01 * rng.normal()})
    return pd.DataFrame(rows)


def test_paired_differences_remove_the_shared_universe_effect():
    walks = walks_frame(np.random.default_rng(4))
    table = paired_table(walks, ["hierarchy", "equal_weight", "random"], "hierarchy")
    assert table.at["equal_weight", "diff"] == pytest.approx(-0.5, abs=0.02)
    assert table.at["random", "diff"] == pytest.approx(-1.5, abs=0.02)
    # the universes' spread widens each level's interval but not the paired difference's
    assert table.at["equal_weight", "diff_high"] - table.at["equal_weight", "diff_low"] < 0.05
    assert table.at["equal_weight", "high"] - table.at["equal_weight", "low"] > 0.3
    assert table.at["equal_weight", "p_value"] < 0.01
    assert "diff" not in table.columns or np.isnan(table.at["hierarchy", "diff"])


def test_a_run_missing_universes_is_named():
    walks = walks_frame(np.random.default_rng(5))
    walks = walks.drop(walks.index[(walks.seed == 2) & (walks.universe == 3) & (walks.policy == "random")])
    with pytest.raises(ValueError, match=r"seeds \[2\]"):
        score_matrix(walks, "random")
