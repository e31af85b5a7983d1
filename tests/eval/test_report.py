"""`python -m eval.report` on a tiny finished sweep: every table, macro and figure, numbers that
trace back to the runs, and the refusal to mix configs."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from eval import metrics
from eval.latex import number
from eval.report import FIGURES, TABLES, ReportConfig, report, select_setting
from eval.results import walk_forward_table
from eval.runs import MixedConfigError, Run, find_runs, group_runs
from eval.splits import walk_forward_folds

from .conftest import SWEEP_BASELINES


def _macros(out) -> dict[str, str]:
    text = (out / "tables" / "macros.tex").read_text()
    return dict(re.findall(r"\\newcommand\{\\(\w+)\}\{(.*)\}", text))


def test_every_table_macro_and_figure_is_written(tiny_report):
    out, printed = tiny_report
    for name in TABLES:
        text = (out / "tables" / f"{name}.tex").read_text()
        assert text.startswith(r"\begin{tabular}") and text.rstrip().endswith(r"\end{tabular}"), name
    for name in FIGURES:
        assert (out / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF"), name
    assert not list(out.rglob("*.tmp"))
    # the report says which runs it used, and prints the main table
    assert printed.count("/ablation=") == 6 and "ablation=full, market=synthetic8 (alpha 1, seed 4)" in printed
    assert re.search(r"^hierarchy\s+-?\d", printed, re.M) and re.search(r"^equal_weight\s", printed, re.M)


def test_numbers_trace_back_to_the_runs(tiny_report, tiny_sweep):
    out, _ = tiny_report
    macros = _macros(out)
    full = [Run.load(tiny_sweep / f"ablation=full,seed={s}") for s in (0, 1)]
    sharpe = [run.evaluation.policies["hierarchy"]["sharpe"] for run in full]
    assert macros["LearnedSharpe"] == number(np.mean(sharpe))
    assert macros["MainSharpeEqualWeight"] == number(np.mean([r.evaluation.policies["equal_weight"]["sharpe"]
                                                              for r in full]))
    assert macros["NumSeeds"] == "2" and macros["NumRuns"] == "6" and macros["NumTrials"] == "6"
    assert macros["TestStart"] == full[0].folder.frame("hierarchy", "returns").index[0].date().isoformat()
    assert macros["CfgHierarchyMetaPeriod"] == "5" and macros["WalkForwardFolds"] == "0"
    # every policy of the primary row has a main-table row, and flat PPO joins from its own row
    main = (out / "tables" / "main.tex").read_text()
    assert main.count(r"\pm") == 7 * (len(SWEEP_BASELINES) + 2)
    assert "Flat PPO" in main and "Oracle (bound)" in main
    ablations = (out / "tables" / "ablations.tex").read_text()
    assert [line.split(" & ")[0] for line in ablations.splitlines() if " & " in line][1:] == [
        "Full system", "Flat PPO", "No meta-controller"]
    # the crash table covers the crash policies asked for; the crisis windows lie outside the split
    crash = (out / "tables" / "crash.tex").read_text()
    assert "Equal weight" in crash and "Oracle" in crash and "Buy and hold" not in crash
    assert "covers none of the crisis windows" in (out / "tables" / "crisis.tex").read_text()
    assert "No walk-forward results" in (out / "tables" / "walk_forward.tex").read_text()
    assert "Decision latency p99" in (out / "tables" / "latency.tex").read_text()
    compute = (out / "tables" / "compute.tex").read_text()
    assert compute.count("3{,}864") == 3                    # env steps summed over the phases


def test_walk_forward_folds_are_tabled_when_recorded(tiny_sweep, tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        shutil.copytree(tiny_sweep / f"ablation=full,seed={seed}", root / f"seed={seed}")
    expected = []
    for seed in (0, 1):
        run = Run.load(root / f"seed={seed}")
        returns = {p: run.folder.frame(p, "returns")["return"] for p in ("hierarchy", "equal_weight")}
        index = returns["hierarchy"].index
        folds = walk_forward_folds(len(index), in_sample=60, out_of_sample=60, step=60)
        record = {"folds": [{"test_start": str(index[f.test[0]].date()), "test_end": str(index[f.test[-1]].date()),
                             "policies": {p: {"sharpe": float(metrics.sharpe_ratio(r.to_numpy()[f.test])[0])}
                                          for p, r in returns.items()}} for f in folds]}
        (run.path / "eval" / "walk_forward.json").write_text(json.dumps(record))
        expected.append([fold["policies"]["hierarchy"]["sharpe"] for fold in record["folds"]])
    table = walk_forward_table(group_runs(find_runs(root))[0])
    assert list(table.columns) == ["test_start", "test_end", "hierarchy", "equal_weight"]
    np.testing.assert_allclose(table["hierarchy"], np.mean(expected, axis=0))
    assert len(table) == 3
    # a fold in which a policy never traded recorded its NaN Sharpe as null: the seeds that have one
    run = Run.load(root / "seed=0")
    record = json.loads((run.path / "eval" / "walk_forward.json").read_text())
    record["folds"][1]["policies"]["equal_weight"]["sharpe"] = None
    (run.path / "eval" / "walk_forward.json").write_text(json.dumps(record))
    table = walk_forward_table(group_runs(find_runs(root))[0])
    other = json.loads((root / "seed=1" / "eval" / "walk_forward.json").read_text())["folds"][1]
    assert table["equal_weight"].iloc[1] == pytest.approx(other["policies"]["equal_weight"]["sharpe"])


def test_mixed_configs_are_refused_before_anything_is_written(tiny_sweep, tmp_path):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, root)
    path = root / "ablation=no_meta,seed=1" / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["risk"]["max_drawdown"] = 0.3
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "paper"
    with pytest.raises(MixedConfigError, match=r"ablation=no_meta.*risk\.max_drawdown \(0\.15 vs 0\.3\)"):
        report(ReportConfig(runs=str(root), out=str(out)))
    assert not out.exists()


def test_one_setting_at_a_time(tiny_sweep, tmp_path):
    root = tmp_path / "sweep"
    shutil.copytree(tiny_sweep / "ablation=full,seed=0", root / "a")
    shutil.copytree(tiny_sweep / "ablation=full,seed=0", root / "b")
    path = root / "b" / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config["market"]["synthetic"]["seed"] = 9
    path.write_text(yaml.safe_dump(config))
    groups = group_runs(find_runs(root))
    with pytest.raises(ValueError, match=r"2 settings match market=None.*pass market=\.\.\. and budget=\.\.\."):
        select_setting(groups, None, None)
    chosen = select_setting(groups, "synthetic8 (alpha 1, seed 9)", None)
    assert [g.runs[0].path.name for g in chosen] == ["b"]


def test_regime_tables_slice_by_detected_and_true_regimes(tiny_report):
    out, _ = tiny_report
    detected = (out / "tables" / "regimes_detected.tex").read_text()
    true = (out / "tables" / "regimes_true.tex").read_text()
    assert "regime 0 Sharpe" in detected and "Share of bars" in detected
    header = next(line for line in true.splitlines() if line.startswith("Policy"))
    assert header.index("bull") < header.index("bear")                 # the generator's order
    assert pd.Series(re.findall(r"Share of bars.*", true)).size == 1


def test_universe_tables_trace_back_to_the_walks(tiny_report, tiny_sweep):
    out, printed = tiny_report
    macros = _macros(out)
    walks = pd.concat([Run.load(tiny_sweep / f"ablation=full,seed={s}").folder.universes() for s in (0, 1)])
    mean = walks.groupby("policy")["sharpe"].mean()
    assert macros["UniversesCount"] == "4"
    assert macros["UniSharpeHierarchy"] == number(mean["hierarchy"])
    assert macros["UniSharpeEqualWeight"] == number(mean["equal_weight"])
    assert macros["UniShareHierarchy"] == number(mean["hierarchy"] / mean["oracle_cost_aware"], 0, 100)
    assert macros["UniDeltaEqualWeight"] == number(mean["equal_weight"] - mean["hierarchy"])
    assert macros["UniSharpeFlatPpo"] != "--" and macros["UniSharpeSixtyForty"] == "--"   # not walked here
    universes = (out / "tables" / "universes.tex").read_text()
    assert "Flat PPO" in universes and "Cost-aware oracle (bound)" in universes
    ablations = (out / "tables" / "ablations_universes.tex").read_text()
    assert [line.split(" & ")[0] for line in ablations.splitlines() if " & " in line][1:] == [
        "Full system", "Flat PPO", "No meta-controller"]
    assert macros["AbluniDeltaCql"] == "--" and macros["AbluniSharpeFull"] == macros["UniSharpeHierarchy"]
    assert "test universes x seeds [0, 1]" in printed


def test_regime_probes_read_the_decision_logs_against_the_ground_truth(tiny_report):
    out, _ = tiny_report
    macros = _macros(out)
    probes = (out / "tables" / "probes.tex").read_text()
    assert "Best domain" in probes and "bull" in probes
    assert macros["ProbeTilt"] != "--" and macros["ProbeTiltLow"] != "--"
    # this short test split has no volatile bar: the de-risking question has no answer here
    assert "volatile" not in probes and macros["ProbeAppetiteDelta"] == "--"


def test_the_command_line_takes_market_and_budget_as_its_own_keys():
    """`market=` and `budget=` choose the setting: they are not the training config groups."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    folder = Path(__file__).resolve().parents[2] / "configs" / "eval"
    with initialize_config_dir(config_dir=str(folder), version_base="1.3"):
        cfg = compose("report", overrides=["runs=runs/x", "market=us_markets", "budget=paper"])
    assert (cfg.runs, cfg.market, cfg.budget) == ("runs/x", "us_markets", "paper")


def test_search_trials_count_in_the_deflated_sharpe_and_missing_runs_are_named(tiny_sweep, tmp_path):
    """A hyperparameter search's trials (its trials' search.json) join the sweep's runs as the
    deflated Sharpe ratio's trials, lowering it; a sweep job that did not finish is named."""
    from eval.report import Report
    from learners.run.sweep import JOB_FILE, SWEEP_FILE, TRIAL_FILE

    search = tmp_path / "search"
    for k in range(40):
        (search / f"trial{k}").mkdir(parents=True)
        (search / f"trial{k}" / TRIAL_FILE).write_text(json.dumps({"objective": 0.1 * k, "pruned": k % 2 == 1}))
    groups = group_runs(find_runs(tiny_sweep))
    plain = Report(groups, ReportConfig(runs=str(tiny_sweep), out=str(tmp_path / "plain")))
    searched = Report(groups, ReportConfig(runs=str(tiny_sweep), out=str(tmp_path / "searched"),
                                           searches=[str(search)]))
    for made in (plain, searched):
        made.overfitting_table()
    assert plain.macros.values["NumTrials"] == "6" and plain.macros.values["NumSearchTrials"] == "0"
    assert searched.macros.values["NumTrials"] == "46" and searched.macros.values["NumSearchTrials"] == "40"
    assert float(searched.macros.values["DsrBest"]) < float(plain.macros.values["DsrBest"])
    assert "hyperparameter-search trials & 40" in (tmp_path / "searched" / "tables" / "overfitting.tex").read_text()

    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_sweep / "ablation=full,seed=0", sweep / "full-seed0")
    (sweep / "full-seed1").mkdir()
    jobs = [["ablation=full", "seed=0"], ["ablation=full", "seed=1"], ["ablation=full", "seed=2"]]
    (sweep / SWEEP_FILE).write_text(json.dumps({"started": "", "launcher": "local", "sweeper": "basic",
                                                "jobs": jobs}) + "\n")
    for k, name in enumerate(["full-seed0", "full-seed1"]):
        (sweep / name / JOB_FILE).write_text(json.dumps({"num": k, "overrides": jobs[k],
                                                         "status": ["completed", "failed"][k],
                                                         "error": "JobFailed: seed=1 stopped"}))
    partial = Report(group_runs(find_runs(sweep)), ReportConfig(runs=str(sweep), out=str(tmp_path / "partial")))
    assert [job.name for job in partial.missing] == ["full-seed1", "seed=2"]
    assert [job.status for job in partial.missing] == ["failed", "never started"]
    partial.runs_table()
    assert "Missing runs (failed or never finished): full-seed1, seed=2." in \
        (tmp_path / "partial" / "tables" / "runs.tex").read_text()
