"""Walk-forward retraining: folds in market positions after the warm-up, train / validation /
test slices without overlap, and the stitched out-of-sample record of a tiny run."""

import json

import numpy as np
import pandas as pd
import pytest

from envs.synthetic import SyntheticConfig, generate
from learners.experiment.walk_forward import fold_splits, folds_of
from learners.run.config import WalkForwardConfig
from learners.train import train
from tests.learners.experiment.test_curriculum import config


def test_folds_start_after_the_warm_up_and_keep_the_last_ones():
    walk = WalkForwardConfig(in_sample=100, out_of_sample=20, step=20, purge=3, folds=2)
    folds = folds_of(400, warmup=50, config=walk)
    every = folds_of(400, warmup=50, config=WalkForwardConfig(in_sample=100, out_of_sample=20, step=20, purge=3))
    assert [f.test[0] for f in folds] == [f.test[0] for f in every[-2:]]
    assert every[0].train[0] == 50 and every[0].test[0] == 50 + 100 + 3
    assert all(f.test[-1] < 400 and f.train[-1] + 3 < f.test[0] for f in every)


def test_fold_splits_put_validation_after_training_and_an_embargo():
    market = generate(SyntheticConfig(years=2, seed=0))
    fold = folds_of(market.n_bars, 60, WalkForwardConfig(in_sample=200, out_of_sample=40, step=40))[0]
    splits = fold_splits(market, fold, validation_fraction=0.25, embargo=5)
    position = market.timestamps.get_loc
    assert position(splits.train.timestamps[0]) == fold.train[0]
    assert position(splits.validation.timestamps[0]) - position(splits.train.timestamps[-1]) == 6
    assert position(splits.validation.timestamps[-1]) == fold.train[-1]
    assert splits.validation.n_bars == 50 and splits.test.n_bars == 40
    with pytest.raises(ValueError, match="in-sample bars leave"):
        fold_splits(market, fold, validation_fraction=0.99, embargo=5)


@pytest.mark.slow
def test_a_walk_forward_run_stitches_its_out_of_sample_windows(tmp_path):
    train(config("phase=1", "evaluation.walk_forward.enabled=true",
                 "evaluation.walk_forward.folds=2"), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "eval" / "walk_forward.json").read_text())
    assert len(record["folds"]) == 2 and set(record["stitched"]) == {"hierarchy", "equal_weight"}
    returns = pd.read_parquet(tmp_path / "run" / "eval" / "walk_forward_returns.parquet")
    # each window's first decision fills at its second bar: 62 returns per 63-bar window
    assert len(returns) == 2 * 62 and returns.index.is_monotonic_increasing
    first, second = record["folds"]
    assert pd.Timestamp(first["test_end"]) < pd.Timestamp(second["test_start"])
    # the fold's windows are days of the returns' calendar (the paper tables print them as such)
    assert first["test_end"] == str(returns.index[61].date()) and len(first["train_end"]) == len("2028-01-31")
    assert np.isfinite(returns.to_numpy()).all()
    assert (tmp_path / "run" / "walk_forward" / "fold_1" / "phase1" / "checkpoints" / "best.ckpt").exists()
