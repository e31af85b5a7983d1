"""The hydra entry point composes the typed config, fails on misspelled keys, and saves the
resolved config with the run."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from learners.run.config import TrainConfig, phase_list, register_configs

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")


def compose_train(overrides: list[str]) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=overrides))


def test_defaults_compose_to_typed_config():
    config = compose_train([])
    assert isinstance(config, TrainConfig)
    assert config.market.source == "synthetic" and config.market.synthetic.universe == "synthetic8"
    assert config.phase == "1" and config.budget.name == "demo"


@pytest.mark.parametrize("group", ["us_equity_sectors", "us_markets", "eurusd_hourly", "csv", "parquet"])
def test_every_market_group_composes(group):
    assert compose_train([f"market={group}"]).market.source == group


def test_phase_all_and_overrides():
    config = compose_train(["phase=all", "budget=smoke", "market.synthetic.alpha=0", "seed=7"])
    assert phase_list(config.phase) == [1, 2, 3] and config.budget.num_envs == 4
    assert config.market.synthetic.alpha == 0 and config.seed == 7


@pytest.mark.parametrize("override, culprit", [("markt=synthetic8", "markt"),
                                               ("market.sourse=synthetic", "sourse"),
                                               ("market=nonexistent", "nonexistent")])
def test_misspelled_keys_fail_naming_the_key(override, culprit):
    with pytest.raises(Exception, match=culprit):
        compose_train([override])


@pytest.mark.parametrize("phase", ["1", "2", "3", "all"])
def test_phase_takes_a_number_or_all(phase):
    assert compose_train([f"phase={phase}"]).phase == phase
    with pytest.raises(ValueError, match="phase='4' is not one of 1, 2, 3, all"):
        phase_list("4")


@pytest.mark.slow
def test_cli_prints_config_trains_and_saves_it(tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "learners.train", "market.synthetic.years=4", "budget=smoke",
                             "phase=1", f"hydra.run.dir={run_dir}"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "market synthetic8: 8 instruments x 1008 bars" in result.stdout
    saved = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert saved.market.synthetic.years == 4 and saved.fabric.seed == saved.seed
    assert "test split" in result.stdout and (run_dir / "eval" / "metrics.json").exists()
    bad = subprocess.run([sys.executable, "-m", "learners.train", "markt=synthetic8",
                          f"hydra.run.dir={run_dir}"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Key 'markt' not in 'TrainConfig'" in bad.stderr


def test_env_config_is_part_of_the_schema():
    config = compose_train(["env.execution=close", "env.drawdown_penalty=0"])
    assert config.env.execution == "close" and config.env.drawdown_penalty == 0
    with pytest.raises(Exception, match="executon"):
        compose_train(["env.executon=close"])


def test_ablations_override_what_they_name():
    assert compose_train([]).ablation.name == "full"
    penalty = compose_train(["ablation=no_risk_penalty"])
    assert penalty.env.drawdown_penalty == 0 and penalty.env.tail_penalty == 0
    assert compose_train([]).curriculum.pretrain == "none"
    assert compose_train(["ablation=cql"]).curriculum.pretrain == "cql"
    assert compose_train(["ablation=no_meta"]).ablation.meta is False
    assert compose_train(["ablation=flat_ppo"]).ablation.policy == "flat"
    assert compose_train(["hierarchy.meta_period=21"]).hierarchy.meta_period == 21


def test_feature_ablations():
    assert compose_train([]).features.sentiment is True
    assert compose_train(["ablation=no_sentiment"]).features.sentiment is False
    assert compose_train(["ablation=no_regime"]).features.regime is False


def test_risk_group():
    config = compose_train(["risk.max_var=0.01"])
    assert config.risk.max_var == 0.01 and config.risk.max_drawdown == 0.15
    loose = compose_train(["risk=loose"])
    assert loose.risk.max_var == float("inf") and loose.risk.max_class_share == 1.0
    loose.risk.check()


def test_own_csv_market_with_a_domain_map_from_the_command_line(tmp_path):
    from envs.loading import load_market

    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,close\n2020-01-02,AAA,1\n2020-01-03,AAA,1.1\n2020-01-06,AAA,1.2\n"
                    "2020-01-02,BBB,5\n2020-01-03,BBB,5.5\n2020-01-06,BBB,5.2\n")
    config = compose_train(["market=csv", f"market.files.path={path}", f"market.lake_dir={tmp_path / 'lake'}",
                            "+market.files.domains={tech:[AAA],energy:[BBB]}"])
    market = load_market(config.market)
    assert market.symbols == ("AAA", "BBB") and market.domain_names == ("tech", "energy")
    assert not market.has_ohlc.any()


def test_learner_and_fabric_nodes():
    config = compose_train(["learner.ppo.clip_coef=0.1", "fabric.devices=2", "fabric.strategy=ddp"])
    assert config.learner.ppo.clip_coef == 0.1 and config.learner.cql.sac.actor_lr == 1e-4
    assert config.fabric.devices == 2 and config.fabric.strategy == "ddp"
    with pytest.raises(Exception, match="clip_cof"):
        compose_train(["learner.ppo.clip_cof=0.1"])
