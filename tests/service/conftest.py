"""Shared fixtures of the decision service's tests: one trained smoke run (every phase, four
years of synthetic8, features computed afresh rather than read from the data lake) and its
exported artifact."""

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONFIGS = str(Path(__file__).resolve().parents[2] / "configs")
SMOKE = ["phase=all", "budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
         "features.cache=false"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    from learners.run.config import register_configs
    from learners.train import train

    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        config = OmegaConf.to_object(compose("train", overrides=SMOKE))
    run_dir = tmp_path_factory.mktemp("run")
    train(config, run_dir)
    return run_dir


@pytest.fixture(scope="session")
def artifact(trained_run, tmp_path_factory) -> Path:
    from service.export import ExportConfig, export

    return export(ExportConfig(ckpt=str(trained_run), out=str(tmp_path_factory.mktemp("export") / "artifact")))


@pytest.fixture(scope="session")
def bars(artifact) -> list[dict]:
    """The test split's bars as the service takes them."""
    return [json.loads(line) for line in (artifact / "bars_test.jsonl").read_text().splitlines()]
