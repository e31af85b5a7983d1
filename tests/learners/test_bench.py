"""The benchmark's bookkeeping (rows, ratios, the markdown table) and a smoke run of each task."""

import json
import os

import numpy as np
import pytest

from learners import bench
from learners.bench import Run


def test_summary_rows_carry_mean_std_and_per_seed_speed_ratios():
    per_seed = [{"ours": Run(500.0, 300.0, 150.0), "sb3": Run(480.0, 100.0, 100.0)},
                {"ours": Run(400.0, 200.0, 400.0), "sb3": Run(500.0, 200.0, 100.0)}]
    ours, sb3 = bench.summarise("ppo_cartpole", per_seed, scale=1.0)
    assert (ours["impl"], ours["seeds"], ours["return_mean"], ours["reference"]) == ("ours", 2, 450.0, "sb3")
    assert ours["return_std"] == pytest.approx(np.std([500, 400], ddof=1))
    assert ours["steps_per_s_ratio"] == pytest.approx((3.0 + 1.0) / 2)   # per seed, then averaged
    assert ours["cpu_steps_per_s_ratio"] == pytest.approx((1.5 + 4.0) / 2)
    assert "steps_per_s_ratio" not in sb3 and "reference" not in sb3


def test_cql_rows_compare_only_our_cql_with_d3rlpy():
    run = {"behaviour": Run(-600.0), "ours-cql": Run(-150.0, 40.0, 40.0), "ours-sac-offline": Run(-300.0, 300.0, 300.0),
           "d3rlpy": Run(-160.0, 20.0, 20.0)}
    rows = {r["impl"]: r for r in bench.summarise("cql_medium", [run], scale=1.0)}
    assert rows["ours-cql"]["steps_per_s_ratio"] == pytest.approx(2.0) and rows["ours-cql"]["reference"] == "d3rlpy"
    assert "steps_per_s_ratio" not in rows["ours-sac-offline"] and np.isnan(rows["behaviour"]["steps_per_s"])


def test_record_merges_runs_and_rewrites_only_the_marked_table(tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# prose above\n<!-- bench:table -->\nstale\n<!-- /bench:table -->\nprose below\n")
    rows_path = tmp_path / "rows.json"
    bench.record(rows_path, bench.summarise("sac", [{"ours": Run(-150.0, 100.0, 120.0),
                                                     "sb3": Run(-160.0, 90.0, 100.0)}], 1.0), markdown)
    bench.record(rows_path, bench.summarise("ppo_cartpole", [{"ours": Run(500.0, 9.0, 9.0),
                                                              "sb3": Run(500.0, 6.0, 6.0)}], 1.0), markdown)
    rows = json.loads(rows_path.read_text())
    assert [(r["algo"], r["impl"]) for r in rows] == [("ppo", "ours"), ("ppo", "sb3"), ("sac", "ours"), ("sac", "sb3")]
    text = markdown.read_text()
    assert text.startswith("# prose above") and text.endswith("prose below\n") and "stale" not in text
    assert "| sac | Pendulum-v1 | ours | 1 | 20000 | -150.0 +/- 0.0 | +10.0 (0.0) vs sb3 | 100 | 1.11 | 1.20 |" in text


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ppo_cartpole", "sac", "cql_medium", "cql_medium_replay"])
def test_each_task_runs_at_a_tiny_budget(task):
    run = {"sac": lambda: bench.run_sac(0, 0.01), "ppo_cartpole": lambda: bench.run_ppo("ppo_cartpole", 0, 0.01),
           "cql_medium": lambda: bench.run_cql("cql_medium", 0, 0.05),
           "cql_medium_replay": lambda: bench.run_cql("cql_medium_replay", 0, 0.05)}[task]()
    expected = {"ppo_cartpole": {"ours", "ours-sync", "sb3"}, "sac": {"ours", "sb3"},
                "cql_medium": {"behaviour", "ours-cql", "ours-sac-offline"},
                "cql_medium_replay": {"behaviour", "ours-cql", "ours-sac-offline"}}[task]
    assert set(run) == expected and all(np.isfinite(r.ret) for r in run.values())


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("D3RLPY_PYTHON"), reason="no d3rlpy environment ($D3RLPY_PYTHON)")
def test_d3rlpy_cql_runs_on_our_dataset():
    run = bench.run_cql("cql_medium", 0, 0.02, os.environ["D3RLPY_PYTHON"])
    assert np.isfinite(run["d3rlpy"].ret) and run["d3rlpy"].per_s > 0
