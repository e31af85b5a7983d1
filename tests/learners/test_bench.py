"""The benchmark's bookkeeping (rows, ratios, the markdown table) and a smoke run of each task."""

import json

import numpy as np
import pytest

from learners import bench


def test_summary_rows_carry_mean_std_and_per_seed_speed_ratio():
    per_seed = [{"ours": (500.0, 300.0), "sb3": (480.0, 100.0)}, {"ours": (400.0, 200.0), "sb3": (500.0, 200.0)}]
    ours, sb3 = bench.summarise("ppo_cartpole", per_seed, scale=1.0)
    assert (ours["impl"], ours["seeds"], ours["return_mean"]) == ("ours", 2, 450.0)
    assert ours["return_std"] == pytest.approx(np.std([500, 400], ddof=1))
    assert ours["steps_per_s_ratio_vs_sb3"] == pytest.approx((3.0 + 1.0) / 2)   # per seed, then averaged
    assert "steps_per_s_ratio_vs_sb3" not in sb3


def test_record_merges_runs_and_rewrites_only_the_marked_table(tmp_path):
    markdown = tmp_path / "BENCHMARKS.md"
    markdown.write_text("# prose above\n<!-- bench:table -->\nstale\n<!-- /bench:table -->\nprose below\n")
    rows_path = tmp_path / "rows.json"
    bench.record(rows_path, bench.summarise("sac", [{"ours": (-150.0, 100.0), "sb3": (-160.0, 90.0)}], 1.0), markdown)
    bench.record(rows_path, bench.summarise("ppo_cartpole", [{"ours": (500.0, 9.0), "sb3": (500.0, 6.0)}], 1.0),
                 markdown)
    rows = json.loads(rows_path.read_text())
    assert [(r["algo"], r["impl"]) for r in rows] == [("ppo", "ours"), ("ppo", "sb3"), ("sac", "ours"), ("sac", "sb3")]
    text = markdown.read_text()
    assert text.startswith("# prose above") and text.endswith("prose below\n") and "stale" not in text
    assert "| sac | Pendulum-v1 | ours | 1 | 20000 | -150.0 +/- 0.0 | +10.0 (0.0) | 100 | 1.11 |" in text


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ppo_cartpole", "sac", "cql"])
def test_each_task_runs_at_a_tiny_budget(task):
    run = {"sac": lambda: bench.run_sac(0, 0.01), "cql": lambda: bench.run_cql(0, 0.05),
           "ppo_cartpole": lambda: bench.run_ppo("ppo_cartpole", 0, 0.01)}[task]()
    expected = {"ppo_cartpole": {"ours", "ours-sync", "sb3"}, "sac": {"ours", "sb3"},
                "cql": {"behaviour", "ours-cql", "ours-sac-offline"}}[task]
    assert set(run) == expected and all(np.isfinite(ret) for ret, _ in run.values())
