"""The results archive: what the report needs and no more, the report built from it alone, and
the comparison of a rerun with it."""

import json
import shutil

import pandas as pd

from eval.archive import archive, compare
from eval.report import ReportConfig, report
from eval.runs import find_runs


def test_the_report_builds_from_the_archive_alone(tiny_sweep, tmp_path):
    out = tmp_path / "results"
    written = archive(tiny_sweep, out)
    assert len(written) == 6
    full = out / "ablation=full,seed=0" / "eval"
    assert {p.name for p in full.iterdir()} >= {"metrics.json", "decisions.jsonl", "regimes.parquet",
                                                "hierarchy_returns.parquet", "equal_weight_weights.parquet"}
    assert not list(full.glob("*_precost_*")) and not list(full.glob("*_costs.parquet"))
    assert (out / "ablation=full,seed=1" / "eval" / "decisions.jsonl").exists()     # every primary seed's probes
    flat = {p.name for p in (out / "ablation=flat_ppo,seed=1" / "eval").iterdir()}
    assert flat == {"metrics.json", "flat_ppo_returns.parquet", "universes.parquet"}
    report(ReportConfig(runs=str(out), out=str(tmp_path / "paper"), resamples=50, crash_paths=1, crash_length=30,
                        var_window=40, crash_policies=["equal_weight"]))
    original = tmp_path / "original"
    report(ReportConfig(runs=str(tiny_sweep), out=str(original), resamples=50, crash_paths=1, crash_length=30,
                        var_window=40, crash_policies=["equal_weight"]))
    for name in ("main", "significance", "ablations", "costs", "domains", "overfitting", "universes",
                 "ablations_universes", "probes"):
        assert (tmp_path / "paper" / "tables" / f"{name}.tex").read_text() == \
            (original / "tables" / f"{name}.tex").read_text(), name


def test_a_rerun_is_compared_figure_by_figure(tiny_sweep, tmp_path):
    out = tmp_path / "results"
    archive(tiny_sweep, out)
    rerun = tmp_path / "rerun"
    shutil.copytree(tiny_sweep / "ablation=full,seed=1", rerun / "ablation=full,seed=1")
    assert compare(out, rerun, 0.0) == []
    path = rerun / "ablation=full,seed=1" / "eval" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["policies"]["hierarchy"]["sharpe"] += 1e-3
    path.write_text(json.dumps(metrics))
    problems = compare(out, rerun, 1e-4)
    assert len(problems) == 1 and "seed 1, policies hierarchy sharpe" in problems[0]
    assert compare(out, rerun, 1e-2) == []
    assert [r.seed for r in find_runs(rerun)] == [1]


def test_the_comparison_covers_universe_walks_and_skips_metrics_the_archive_predates(tiny_sweep, tmp_path):
    out = tmp_path / "results"
    archive(tiny_sweep, out)
    rerun = tmp_path / "rerun" / "ablation=full,seed=0"
    shutil.copytree(tiny_sweep / "ablation=full,seed=0", rerun)
    path = rerun / "eval" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["policies"]["hierarchy"]["a_newer_metric"] = 1.0          # recorded by newer code only
    path.write_text(json.dumps(metrics))
    assert compare(out, rerun.parent, 0.0) == []
    walks = pd.read_parquet(rerun / "eval" / "universes.parquet")
    walks.loc[(walks.universe == 2) & (walks.policy == "hierarchy"), "sharpe"] += 0.5
    walks.to_parquet(rerun / "eval" / "universes.parquet")
    problems = compare(out, rerun.parent, 1e-6)
    assert len(problems) == 1 and "seed 0, universe 2 hierarchy sharpe" in problems[0]
