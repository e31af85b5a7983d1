"""Finished runs on disk: the folder contract, discovery, grouping and the refusal to mix."""

import json
import shutil

import pytest
import yaml

from envs.loading import MarketConfig
from envs.synthetic import SyntheticConfig
from eval.runs import MixedConfigError, Run, find_runs, flatten, group_runs, market_label

from .conftest import ABLATIONS, SEEDS, SWEEP_BASELINES


def test_a_run_folder_holds_the_contract(tiny_sweep):
    run = Run.load(tiny_sweep / "ablation=full,seed=1")
    assert run.seed == 1 and run.ablation == "full" and run.budget == "smoke"
    assert run.market == "synthetic8 (alpha 1, seed 4)"
    assert run.policies == ["hierarchy", *SWEEP_BASELINES] and run.learned_policy == "hierarchy"
    assert set(run.summaries("pre_cost")) == set(run.policies)
    assert run.evaluation.domains == {"forex": ["EURUSD", "GBPUSD", "USDJPY"], "commodities": ["XAUUSD", "WTIUSD"],
                                      "equity": ["SPX500", "NAS100", "US30"]}
    returns = run.folder.frame("hierarchy", "returns")
    assert returns["return"].to_numpy() == pytest.approx(run.folder.frame("hierarchy", "contributions").sum(axis=1))
    assert run.summaries()["hierarchy"]["sharpe"] != run.summaries("pre_cost")["hierarchy"]["sharpe"]
    assert len(run.folder.decisions()) == len(returns)
    assert list(run.folder.regimes().columns) == ["regime_0", "regime_1", "regime_2"]
    assert run.folder.walk_forward() is None
    history, split = run.evaluation_market()
    assert split.timestamps.get_indexer(returns.index).min() > 0
    assert history.timestamps[-1] == split.timestamps[-1] and history.timestamps[0] < split.timestamps[0]
    with pytest.raises(FileNotFoundError, match="has no weights of policy 'astrology'"):
        run.folder.frame("astrology", "weights")


def test_finds_and_groups_the_sweep(tiny_sweep):
    runs = find_runs(tiny_sweep.parent)
    groups = group_runs(runs)
    assert [g.ablation for g in groups] == sorted(ABLATIONS)
    assert all(g.seeds == list(SEEDS) for g in groups)
    assert {g.ablation: g.policy for g in groups} == {"flat_ppo": "flat_ppo", "full": "hierarchy",
                                                      "no_meta": "hierarchy"}
    with pytest.raises(FileNotFoundError, match="no finished run"):
        find_runs(tiny_sweep / "ablation=full,seed=0" / ".hydra")


def _copy(tiny_sweep, tmp_path, name="ablation=full,seed=0", to="ablation=full,seed=7"):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep / "ablation=full,seed=0", root / "ablation=full,seed=0")
    shutil.copytree(tiny_sweep / name, root / to)
    return root, root / to


def _edit_config(folder, key, value, seed=7):
    path = folder / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["seed"] = seed
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    path.write_text(yaml.safe_dump(config))


def test_runs_of_one_row_must_share_their_config(tiny_sweep, tmp_path):
    root, other = _copy(tiny_sweep, tmp_path)
    _edit_config(other, "learner.ppo.learning_rate", 1e-3)
    with pytest.raises(MixedConfigError, match=r"share one row \(ablation=full.*differ in "
                                               r"learner\.ppo\.learning_rate \(0\.0003 vs 0\.001\)"):
        group_runs(find_runs(root))
    _edit_config(other, "learner.ppo.learning_rate", 3e-4)
    assert [len(g.runs) for g in group_runs(find_runs(root))] == [2]          # seeds pool


def test_a_repeated_seed_and_differing_metadata_are_refused(tiny_sweep, tmp_path):
    root, other = _copy(tiny_sweep, tmp_path)
    _edit_config(other, "seed", 0, seed=0)
    with pytest.raises(MixedConfigError, match="repeat one config with seed 0"):
        group_runs(find_runs(root))
    _edit_config(other, "seed", 7)
    metrics = json.loads((other / "eval" / "metrics.json").read_text())
    metrics["symbols"] = metrics["symbols"][::-1]
    (other / "eval" / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(MixedConfigError, match="eval/metrics.json differ in symbols"):
        group_runs(find_runs(root))


def test_broken_run_folders_are_named(tiny_sweep, tmp_path):
    root, other = _copy(tiny_sweep, tmp_path)
    (other / ".hydra" / "config.yaml").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.yaml: the run has no resolved config"):
        find_runs(root)
    (other / ".hydra" / "config.yaml").write_text("{markt: {}}")
    with pytest.raises(ValueError, match=r"config\.yaml: the resolved config does not fit TrainConfig: .*markt"):
        find_runs(root)
    (other / ".hydra" / "config.yaml").write_text("{}")
    (other / "eval" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics\.json: unreadable evaluation metrics"):
        find_runs(root)
    (other / "eval" / "metrics.json").write_text(json.dumps({"split": "test", "sharpe": 1.0}))
    with pytest.raises(ValueError, match=r"metrics\.json: not an evaluation record; missing keys .*'policies'.*"
                                         r"unknown keys \['sharpe'\]"):
        find_runs(root)


def test_flatten_and_market_label():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": {}}) == {"a.b": 1, "a.c": (1, 2), "d": {}}
    assert market_label(MarketConfig(source="us_equity_sectors")) == "us_equity_sectors"
    factor = MarketConfig(synthetic=SyntheticConfig(universe="factor", alpha=0.0, seed=3))
    assert market_label(factor) == "factor (alpha 0, seed 3)"
