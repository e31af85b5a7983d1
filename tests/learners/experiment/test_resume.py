"""Resuming a run at the smoke budget: every policy (the hierarchy and the flat PPO baseline)
interrupted and resumed ends with the numbers of the uninterrupted run, the wall seconds of every
invocation add up, a resume with other settings is refused naming them, and `eval.backtest`
replays the flat PPO a run trained beside the hierarchy."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import eval.backtest as backtest
import learners.experiment.phases as phases
from learners.run.config import TrainConfig, register_configs
from learners.train import train

from .conftest import killed_at

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")
SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]"]
WITH_FLAT = ["phase=1", "evaluation.flat_ppo=true"]

pytestmark = pytest.mark.slow


def config(*overrides: str) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=[*SMOKE, *overrides]))


def compose_backtest(*overrides: str) -> backtest.BacktestConfig:
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("backtest", overrides=list(overrides)))


@pytest.fixture(scope="module")
def flat_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("flat")
    return run_dir, train(config(*WITH_FLAT), run_dir)


def test_the_flat_ppo_killed_before_its_first_checkpoint_resumes_to_the_same_numbers(flat_run, tmp_path,
                                                                                    monkeypatch):
    _, uninterrupted = flat_run
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        killed_at(patch, phases, "collect_flat_rollout", 1)
        with pytest.raises(KeyboardInterrupt):
            train(config(*WITH_FLAT), run_dir)
    resumed = train(config(*WITH_FLAT, "resume=true"), run_dir)
    assert set(resumed.policies) == {"hierarchy", "flat_ppo", "equal_weight"}
    assert resumed.policies == uninterrupted.policies
    # phase 1 finished in the first invocation: its seconds are still counted
    assert set(resumed.training.wall_s) == {"phase1", "flat_ppo"} and resumed.training.wall_s["phase1"] > 0
    assert resumed.training.env_steps == uninterrupted.training.env_steps


def test_wall_seconds_accumulate_over_invocations(flat_run, tmp_path, monkeypatch):
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        killed_at(patch, phases, "collect_flat_rollout", 2)        # after the flat PPO's first checkpoint
        with pytest.raises(KeyboardInterrupt):
            train(config(*WITH_FLAT), run_dir)
    import torch
    before = torch.load(run_dir / "flat_ppo" / "checkpoints" / "last.ckpt", weights_only=True)["wall_s"]
    resumed = train(config(*WITH_FLAT, "resume=true"), run_dir)
    assert resumed.training.wall_s["flat_ppo"] > before > 0
    assert resumed.policies == flat_run[1].policies


def test_the_meta_controller_killed_in_its_first_rollout_resumes_to_the_same_numbers(tmp_path, monkeypatch):
    uninterrupted = train(config("phase=2"), tmp_path / "whole")
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        killed_at(patch, phases, "collect_rollout", 3)           # phase 1 made 2 rollouts
        with pytest.raises(KeyboardInterrupt):
            train(config("phase=2"), run_dir)
    assert train(config("phase=2", "resume=true"), run_dir).policies == uninterrupted.policies


def test_a_resume_with_other_settings_is_refused_naming_them(flat_run):
    run_dir, _ = flat_run
    with pytest.raises(ValueError, match=r"budget.phase1_steps=480 -> 960"):
        train(config(*WITH_FLAT, "resume=true", "budget.phase1_steps=960"), run_dir)


def test_eval_backtest_replays_the_flat_ppo_and_keeps_a_summary_per_policy(flat_run):
    run_dir, metrics = flat_run
    flat = backtest.replay(compose_backtest(f"ckpt={run_dir}", "policy=flat_ppo"))
    assert flat["checkpoint"].endswith("flat_ppo/checkpoints/best.ckpt")
    assert flat["post_cost"]["sharpe"] == metrics.policies["flat_ppo"]["sharpe"]
    backtest.replay(compose_backtest(f"ckpt={run_dir}", "policy=learned"))
    out = run_dir / "backtest" / "test"
    assert json.loads((out / "summary_flat_ppo.json").read_text())["policy"] == "flat_ppo"
    assert json.loads((out / "summary_hierarchy.json").read_text())["policy"] == "hierarchy"


def test_eval_backtest_checks_its_arguments_before_building_the_market(flat_run, monkeypatch):
    run_dir, _ = flat_run

    def no_market(*args, **kwargs):
        raise AssertionError("the market was built before the arguments were checked")

    monkeypatch.setattr(backtest, "restore", no_market)
    with pytest.raises(ValueError, match="policy='flat' is not 'learned'"):
        backtest.replay(compose_backtest(f"ckpt={run_dir}", "policy=flat"))
    with pytest.raises(ValueError, match="split='tset' is not one of"):
        backtest.replay(compose_backtest(f"ckpt={run_dir}", "split=tset"))
    with pytest.raises(ValueError, match="holds the hierarchy policy"):
        backtest.replay(compose_backtest(f"ckpt={run_dir / 'phase1' / 'checkpoints' / 'best.ckpt'}",
                                         "policy=flat_ppo"))
