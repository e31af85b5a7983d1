"""The sequence specialists at the smoke budget: each type (transformer, lstm_cnn, tactical, the
last mixed per domain) trains through `phase=all` and, killed in the middle of a phase, resumes
to the numbers of the uninterrupted run; settings they cannot run with are refused naming the key."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import learners.experiment.phases as phases
from learners.run.config import TrainConfig, check_config, register_configs
from learners.run.workspace import Workspace
from learners.train import train

from .conftest import killed_at

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")
SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]", "phase=all"]
MIXED = ["ablation=lstm_cnn_specialists", "+hierarchy.specialists.forex=tactical",
         "+hierarchy.specialists.equity=transformer"]


def config(*overrides: str) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=[*SMOKE, *overrides]))


# killed in phase 1's second rollout (the specialists learning), or phase 3's first
@pytest.mark.slow
@pytest.mark.parametrize("overrides, kill", [(["ablation=transformer_specialists"], 2),
                                             (["ablation=lstm_cnn_specialists"], 2), (MIXED, 5)])
def test_each_type_trains_and_resumes_exactly(overrides, kill, tmp_path, monkeypatch):
    whole = train(config(*overrides), tmp_path / "whole")
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        killed_at(patch, phases, "collect_rollout", kill)
        with pytest.raises(KeyboardInterrupt):
            train(config(*overrides), run_dir)
    resumed = train(config(*overrides, "resume=true"), run_dir)
    assert resumed.policies == whole.policies
    weights = torch.load(run_dir / "phase3" / "checkpoints" / "best.ckpt", weights_only=True)["system"]
    assert any(key.startswith("specialists.commodities.lstm.") for key in weights) == (overrides != [
        "ablation=transformer_specialists"])
    if overrides == MIXED:
        assert any(key.startswith("specialists.forex.patterns.") for key in weights)
        assert any(key.startswith("specialists.equity.attention.") for key in weights)


def test_settings_the_types_cannot_run_with_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="hierarchy.specialist_type='cnn' is not one of mlp, "):
        check_config(config("hierarchy.specialist_type=cnn"))
    with pytest.raises(ValueError, match="curriculum.pretrain='cql' pre-trains on single-bar behaviour data"):
        check_config(config("ablation=transformer_specialists", "curriculum.pretrain=cql"))
    with pytest.raises(ValueError, match="hierarchy.specialists.forex='lstm_cnn' reads the bars' window: "
                                         "set env.window"):
        Workspace.build(config("+hierarchy.specialists.forex=lstm_cnn")).new_system()
