"""Every setting is checked once, before any work: an error names the key, the value and the
allowed range, nothing is built, and a refused start leaves no run folder behind."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import learners.train as entry
from learners.run.config import RANGES, Range, TrainConfig, check_config, register_configs, setting

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")
ROOT = Path(__file__).resolve().parents[3]


def compose_train(*overrides: str) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=list(overrides)))


@pytest.mark.parametrize("budget", ["smoke", "demo", "paper"])
def test_every_budget_passes(budget):
    check_config(compose_train(f"budget={budget}", "phase=all"))


def test_every_range_names_a_setting_of_the_config():
    config = compose_train()
    for key in RANGES:
        assert isinstance(setting(config, key), (int, float)), key


@pytest.mark.parametrize("override, message", [
    ("curriculum.validate_every=0", r"curriculum.validate_every=0 is out of range: it must lie in \[1, inf\)"),
    ("curriculum.checkpoint_every=0", r"curriculum.checkpoint_every=0 .* \[1, inf\)"),
    ("budget.num_envs=-4", r"budget.num_envs=-4 .* \[1, inf\)"),
    ("learner.ppo.gamma=1.5", r"learner.ppo.gamma=1.5 .* \(0, 1\]"),
    ("learner.sac.tau=0", r"learner.sac.tau=0.0 .* \(0, 1\]"),
    ("market.split.train_fraction=1.2", r"market.split.train_fraction=1.2 .* \(0, 1\)"),
    ("risk.max_drawdown=2", r"risk.max_drawdown=2.0 must lie in \(0, 1\]"),
    ("env.warmup_bars=-1", r"env.warmup_bars=-1 must be >= 0"),
])
def test_a_value_out_of_range_is_named_with_its_range(override, message):
    with pytest.raises(ValueError, match=message):
        check_config(compose_train(override))


def test_range_ends():
    assert 1 in Range(1) and 0 not in Range(1) and float("nan") not in Range(0)
    assert 1.0 in Range(0, 1, low_open=True, high_open=False) and 0.0 not in Range(0, 1, low_open=True)
    assert str(Range(0, 1, low_open=True, high_open=False)) == "(0, 1]"


def test_train_refuses_before_building_anything(tmp_path, monkeypatch):
    def no_market(*args, **kwargs):
        raise AssertionError("the workspace was built before the config was checked")

    monkeypatch.setattr(entry.Workspace, "build", no_market)
    with pytest.raises(ValueError, match="curriculum.checkpoint_every=0"):
        entry.train(compose_train("curriculum.checkpoint_every=0"), tmp_path / "run")
    with pytest.raises(ValueError, match=r"evaluation.baselines=.*\['equal_wieght'\] not among"):
        entry.train(compose_train("evaluation.baselines=[equal_wieght]"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_refused_start_on_the_command_line_leaves_no_run_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "learners.train", "budget.num_envs=-4", "experiment=refused"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode != 0
    assert "refused to start: budget.num_envs=-4 is out of range" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs" / "refused").exists() or not any((tmp_path / "runs" / "refused").iterdir())
