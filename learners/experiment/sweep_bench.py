"""Wall time of one sweep through each of hydra's launchers on this machine, side by side with the
basic launcher (one job after the other in one process), and the check that every launcher gives
each run the basic launcher's metrics.

    python -m learners.experiment.sweep_bench --runs 8 --launchers basic local slurm_local ray_cluster

Each launcher runs the same `--runs`-seed sweep (`phase=all` at `--budget`, default the smoke
budget, `--overrides` for more settings) into its own folder under `--out`; the table gives each
one's wall seconds and its speed-up over the basic launcher, and is written to `<out>/sweeps.json`.
A smoke run is mostly start-up (imports, the market and its features, Numba's compilation), which
the basic launcher pays once and a parallel launcher once per worker or job: give the runs more
env steps (`--overrides budget.phase1_steps=...`) to see the compute-bound ratio. On two cores the parallel
launchers run two jobs at a time (`local`: joblib's n_jobs, `ray_cluster`: a local Ray instance of
two CPUs); submitit's local executor starts every job at once.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from learners.run.sweep import missing_jobs
from storage.atomic import write_json

LAUNCHERS = {"basic": [], "local": ["hydra/launcher=local", "hydra.launcher.n_jobs=2"],
             "slurm_local": ["hydra/launcher=slurm_local"],
             "ray_cluster": ["hydra/launcher=ray_cluster", "hydra.launcher.ray.init.num_cpus=2"]}


def run_sweep(folder: Path, launcher: str, runs: int, budget: str,
              overrides: list[str]) -> tuple[float, dict[int, dict]]:
    """Wall seconds of the sweep through `launcher`, and each run's post-cost metrics by seed."""
    command = [sys.executable, "-m", "learners.train", "-m", "phase=all", f"budget={budget}",
               "evaluation.test_universes=0", *overrides, f"seed={','.join(map(str, range(runs)))}",
               *LAUNCHERS[launcher], f"hydra.sweep.dir={folder}", "hydra.sweep.subdir=seed${seed}"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the {launcher} sweep failed:\n{done.stderr[-3000:]}")
    failed = [job.describe() for job in missing_jobs(folder)]
    if failed:
        raise RuntimeError(f"the {launcher} sweep did not finish every run: {failed}")
    metrics = {seed: json.loads((folder / f"seed{seed}" / "eval" / "metrics.json").read_text())["policies"]
               for seed in range(runs)}
    return wall, metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--budget", default="smoke")
    parser.add_argument("--overrides", nargs="*", default=[], help="more settings of every run (key=value)")
    parser.add_argument("--launchers", nargs="+", default=list(LAUNCHERS), choices=list(LAUNCHERS))
    parser.add_argument("--out", type=Path, default=Path("runs/bench/sweeps") / time.strftime("%Y-%m-%d_%H-%M-%S"))
    args = parser.parse_args(argv)
    launchers = ["basic", *[name for name in args.launchers if name != "basic"]]
    walls, reference = {}, None
    for name in launchers:
        walls[name], metrics = run_sweep(args.out / name, name, args.runs, args.budget, args.overrides)
        reference = reference or metrics
        same = metrics == reference
        print(f"{name:12s} {walls[name]:7.1f} s   x{walls['basic'] / walls[name]:.2f} vs basic   "
              f"metrics {'equal to basic' if same else 'DIFFER from basic'}", flush=True)
        if not same:
            raise SystemExit(f"the {name} launcher's runs differ from the basic launcher's")
    write_json(args.out / "sweeps.json", {"runs": args.runs, "budget": args.budget, "overrides": args.overrides,
                                          "wall_s": walls,
                                          "speedup_vs_basic": {k: walls["basic"] / v for k, v in walls.items()}})
    print(f"wrote {args.out / 'sweeps.json'}")


if __name__ == "__main__":
    main()
