"""The run folder: its config and settings written once and read back typed, the evaluation
record round trip and its refusals, checkpoint paths."""

import dataclasses

import pandas as pd
import pytest
from omegaconf import OmegaConf

from learners.run.config import TrainConfig
from learners.run.folder import EvaluationRecord, RunFolder, TrainingRecord
from learners.run.settings import RunSettings


def _config(**budget) -> TrainConfig:
    config = TrainConfig()
    return dataclasses.replace(config, budget=dataclasses.replace(config.budget, **budget))


def test_config_and_settings_round_trip(tmp_path):
    folder = RunFolder(tmp_path / "run")
    config = _config(name="smoke")
    folder.write_config(config)
    assert folder.read_config() == config
    folder.write_config(_config(name="demo"))                          # hydra's file is never overwritten
    assert folder.read_config().budget.name == "smoke"
    settings = RunSettings.resolve(config, 40)
    folder.write_settings(settings)
    assert folder.read_settings() == settings
    assert OmegaConf.load(folder.settings_file).phase1.ppo.num_steps == 60


def test_evaluation_record_round_trip_and_refusals(tmp_path):
    folder = RunFolder(tmp_path / "run")
    record = EvaluationRecord(
        split="test", market="synthetic8", periods_per_year=252.0, seed=3, ablation="full", budget="smoke",
        symbols=["A", "B"], domains={"fx": ["A"], "equity": ["B"]}, first_bar="2024-01-02 00:00:00+00:00",
        last_bar="2024-12-31 00:00:00+00:00", leak_next_return=False,
        policies={"hierarchy": {"sharpe": 0.5, "psr": None}}, pre_cost={"hierarchy": {"sharpe": 0.7, "psr": None}},
        training=TrainingRecord({"phase1": 1.5}, {"phase1": 480}, 1))
    returns = pd.DataFrame({"return": [0.01, -0.02]}, index=pd.DatetimeIndex(["2024-01-02", "2024-01-03"], tz="UTC"))
    folder.write_evaluation(record, {"hierarchy": {"returns": returns}, "hierarchy_precost": {"returns": returns}})
    assert folder.finished and folder.read_evaluation() == record
    pd.testing.assert_frame_equal(folder.frame("hierarchy", "returns", pre_cost=True), returns)
    with pytest.raises(KeyError, match="frame kind 'trades'"):
        folder.write_evaluation(record, {"hierarchy": {"trades": returns}})
    folder.metrics_file.write_text('{"split": "test"}')
    with pytest.raises(ValueError, match=r"not an evaluation record; missing keys \['ablation'"):
        folder.read_evaluation()


def test_checkpoint_paths_and_the_final_checkpoint(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="no finished phase"):
        folder.final_checkpoint()
    for phase in ("phase1", "phase2"):
        folder.checkpoints(phase).folder.mkdir(parents=True)
        (folder.checkpoints(phase).folder / "done").touch()
    assert folder.final_checkpoint() == tmp_path / "run" / "phase2" / "checkpoints" / "best.ckpt"
    assert folder.started_phases() == ["phase1", "phase2"]
    assert RunFolder.of_checkpoint(folder.final_checkpoint()).path == folder.path
    assert folder.fold(1).path == tmp_path / "run" / "walk_forward" / "fold_1"
