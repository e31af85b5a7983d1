"""The same 4-job sweep through each of hydra's launchers that runs on one machine (joblib's
`local`, submitit's `slurm_local`: the SLURM launcher's code path, and Ray with a local instance
the sweep starts) gives every run the metrics the basic launcher gives it, and the sweep folder
records which launcher ran it."""

import json
import subprocess
import sys

import pytest

from learners.run.sweep import sweep_jobs, sweep_records

pytestmark = pytest.mark.slow
SWEEP = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
         "evaluation.test_universes=0", "phase=1", "seed=0,1,2,3"]


def run_sweep(folder, *launcher: str) -> dict[int, dict]:
    """Each run's evaluation of the sweep launched with `launcher`'s overrides, by seed."""
    done = subprocess.run([sys.executable, "-m", "learners.train", "-m", *SWEEP, *launcher,
                           f"hydra.sweep.dir={folder}", "hydra.sweep.subdir=seed${seed}"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [job.status for job in sweep_jobs(folder)] == ["finished"] * 4
    return {seed: json.loads((folder / f"seed{seed}" / "eval" / "metrics.json").read_text()) for seed in range(4)}


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    return run_sweep(tmp_path_factory.mktemp("basic"))


@pytest.mark.parametrize("name, launcher", [
    ("local", ["hydra/launcher=local", "hydra.launcher.n_jobs=2"]),
    ("slurm_local", ["hydra/launcher=slurm_local"]),
    ("ray_cluster", ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2"]),
])
def test_each_launcher_gives_the_basic_launchers_metrics(basic, tmp_path, name, launcher):
    runs = run_sweep(tmp_path, *launcher)
    for seed, metrics in runs.items():
        assert metrics["policies"] == basic[seed]["policies"], seed
        assert metrics["pre_cost"] == basic[seed]["pre_cost"], seed
    assert len({run["policies"]["hierarchy"]["sharpe"] for run in runs.values()}) == 4     # the seeds differ
    record, = sweep_records(tmp_path)
    assert record["launcher"] == name and record["sweeper"] == "basic" and len(record["jobs"]) == 4
