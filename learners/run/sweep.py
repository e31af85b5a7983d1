"""A sweep folder's record: which launcher and sweeper ran it, the jobs it was to run and what
became of each, so that a failed or lost job is named instead of silently missing.

`SweepRecord` is a hydra callback (`hydra.callbacks` in configs/train.yaml). When a multirun
starts, the launching process appends a line to `<sweep>/sweep.jsonl`: the launcher, the sweeper
and the jobs it will run (every job's overrides for hydra's basic sweeper; the number of trials
for a search). Each job writes `job.json` in its own run folder when it starts and again when it
ends (completed, or failed with the error), wherever the launcher runs it: a joblib worker, a
SLURM node, a Ray task (the sweep folder must be on a filesystem they share, as for hydra's own
outputs). A job that never started leaves no `job.json`: `sweep_jobs` still lists it, from the
expected overrides. Several multiruns may share one sweep folder (`make paper-experiments` runs
two); each adds its own line.

    python -m learners.run.sweep runs/paper/sweep_<stamp>     # each job and its status
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from learners.run.folder import RunFolder
from storage.atomic import write_json

SWEEP_FILE = "sweep.jsonl"
JOB_FILE = "job.json"
TRIAL_FILE = "search.json"      # a hyperparameter-search trial's result (learners.experiment.search)


def task_overrides(config: DictConfig) -> list[str]:
    """The command line's overrides as typed: an override whose value is an interpolation
    ('a="${eq:${ablation.name},full}"') unresolved, as each job receives it."""
    return OmegaConf.to_container(config.hydra.overrides.task, resolve=False)


def expected_jobs(config: DictConfig) -> list[list[str]] | None:
    """The overrides of every job hydra's basic sweeper will launch, in launch order (the
    sweeper's own expansion of `hydra.sweeper.params` and the command line); None for another
    sweeper, which picks its jobs as it goes (a search)."""
    if not str(config.hydra.sweeper._target_).endswith("BasicSweeper"):
        return None
    params = OmegaConf.select(config, "hydra.sweeper.params")
    params = OmegaConf.to_container(params, resolve=False) if params is not None else {}
    arguments = [f"{key}={value}" for key, value in params.items()] + task_overrides(config)
    parsed = OverridesParser.create().parse_overrides(arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class SweepRecord(Callback):
    """Writes the sweep's and its jobs' records (see the module docstring); a single run writes nothing."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        launcher, sweeper = config.hydra.launcher, config.hydra.sweeper
        choices = config.hydra.runtime.choices
        record = {"started": _now(), "host": socket.gethostname(), "pid": os.getpid(),
                  "launcher": choices.get("hydra/launcher"), "sweeper": choices.get("hydra/sweeper"),
                  "launcher_class": launcher._target_, "sweeper_class": sweeper._target_,
                  "launcher_settings": {key: value for key, value in OmegaConf.to_container(launcher).items()
                                        if key != "_target_"},
                  "command": task_overrides(config), "jobs": expected_jobs(config)}
        if record["jobs"] is None:
            record["trials"] = OmegaConf.select(config, "hydra.sweeper.n_trials")
        folder = Path(config.hydra.sweep.dir)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / SWEEP_FILE).open("a") as log:
            log.write(json.dumps(record, default=str) + "\n")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.hydra.mode == RunMode.MULTIRUN:
            self._write(config, {"status": "started", "started": _now()})

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if config.hydra.mode != RunMode.MULTIRUN:
            return
        failed = job_return.status == JobStatus.FAILED
        ended = {"status": "failed" if failed else "completed", "ended": _now()}
        if failed:
            error = job_return._return_value
            ended["error"] = f"{type(error).__name__}: {error}"
        self._write(config, ended)

    @staticmethod
    def _write(config: DictConfig, fields: dict[str, Any]) -> None:
        path = Path(config.hydra.runtime.output_dir) / JOB_FILE
        record = json.loads(path.read_text()) if path.exists() else {}
        record.update({"num": int(config.hydra.job.num), "overrides": task_overrides(config),
                       "host": socket.gethostname(), "pid": os.getpid(), **fields})
        write_json(path, record)


@dataclass(frozen=True)
class SweepJob:
    """One job of a sweep: its overrides, run folder (None if it never started) and status:
    'finished' (its evaluation is written), 'failed' (with the error), 'started' (never ended:
    killed, or still running) or 'never started'."""

    overrides: tuple[str, ...]
    folder: Path | None
    status: str
    error: str = ""
    varying: tuple[str, ...] = ()     # its overrides that differ between the sweep's jobs

    @property
    def name(self) -> str:
        """Its run folder's name, or (never started) the overrides that tell it from the others."""
        return self.folder.name if self.folder is not None else " ".join(self.varying or self.overrides)

    def describe(self) -> str:
        where = f" in {self.folder}" if self.folder is not None else ""
        why = f": {self.error}" if self.error else ""
        return f"{' '.join(self.varying or self.overrides)}: {self.status}{where}{why}"


def sweep_records(folder: str | Path) -> list[dict[str, Any]]:
    """The multirun records of a sweep folder ([] if it has none: not a hydra sweep)."""
    path = Path(folder) / SWEEP_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sweep_jobs(folder: str | Path) -> list[SweepJob]:
    """Every job of the sweep in `folder`: those its records expected and those that wrote a
    `job.json` (a search's trials), each with its status."""
    folder = Path(folder)
    started = {}
    for path in sorted(folder.rglob(JOB_FILE)):
        record = json.loads(path.read_text())
        started[tuple(record["overrides"])] = (path.parent, record)
    expected = [tuple(job) for record in sweep_records(folder) for job in record["jobs"] or []]
    every = list(dict.fromkeys([*expected, *started]))
    common = set.intersection(*map(set, every)) if every else set()
    jobs = []
    for overrides in every:
        varying = tuple(item for item in overrides if item not in common)
        if overrides not in started:
            jobs.append(SweepJob(overrides, None, "never started", varying=varying))
            continue
        run, record = started[overrides]
        # a search trial completes without a test evaluation
        status = "finished" if RunFolder(run).finished or record["status"] == "completed" else record["status"]
        jobs.append(SweepJob(overrides, run, status, record.get("error", "") if status == "failed" else "", varying))
    return jobs


def missing_jobs(folder: str | Path) -> list[SweepJob]:
    """The jobs of the sweep in `folder` that did not finish, in launch order."""
    return [job for job in sweep_jobs(folder) if job.status != "finished"]


def search_trials(root: str | Path) -> dict[Path, int]:
    """{search folder: trials it ran (pruned ones included)} for every hyperparameter search under
    `root` (folders whose trials wrote `search.json`): the configurations tried before the runs
    that are reported, which a deflated Sharpe ratio must count."""
    counts: dict[Path, int] = {}
    for trial in sorted(Path(root).rglob(TRIAL_FILE)):
        counts[trial.parent.parent] = counts.get(trial.parent.parent, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", type=Path, help="a sweep folder (hydra.sweep.dir)")
    args = parser.parse_args(argv)
    records = sweep_records(args.sweep)
    if not records:
        raise SystemExit(f"{args.sweep}: no {SWEEP_FILE} (not a sweep folder written by learners.train -m)")
    for record in records:
        print(f"{record['started']}: launcher {record['launcher']}, sweeper {record['sweeper']}, "
              f"{len(record['jobs']) if record['jobs'] is not None else record.get('trials')} jobs")
    for job in sweep_jobs(args.sweep):
        print(f"  {job.describe()}")


if __name__ == "__main__":
    main()
