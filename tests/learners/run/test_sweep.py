"""A sweep folder's record: the jobs it expected and what became of each (finished, failed with
its error, never started), as written by hydra's callbacks in a real multirun with a job that fails."""

import json
import subprocess
import sys

import pytest

from learners.run.sweep import JOB_FILE, SWEEP_FILE, TRIAL_FILE, missing_jobs, search_trials, sweep_jobs, sweep_records

SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
         "evaluation.test_universes=0", "phase=1"]


def _job(folder, num, overrides, status, error=None, finished=False):
    folder.mkdir(parents=True)
    record = {"num": num, "overrides": overrides, "status": status, **({"error": error} if error else {})}
    (folder / JOB_FILE).write_text(json.dumps(record))
    if finished:
        (folder / "eval").mkdir()
        (folder / "eval" / "metrics.json").write_text("{}")


def test_sweep_jobs_names_each_jobs_status_from_the_records(tmp_path):
    first = [["phase=1", "seed=0"], ["phase=1", "seed=1"], ["phase=1", "seed=2"]]
    second = [["phase=1", "seed=3"]]
    (tmp_path / SWEEP_FILE).write_text("".join(json.dumps({"started": "t", "launcher": "local", "sweeper": "basic",
                                                           "jobs": jobs}) + "\n" for jobs in (first, second)))
    _job(tmp_path / "seed0", 0, first[0], "completed", finished=True)
    _job(tmp_path / "seed1", 1, first[1], "failed", error="JobFailed: seed=1 stopped")
    _job(tmp_path / "seed3", 0, second[0], "started")            # killed: never ended
    jobs = sweep_jobs(tmp_path)
    assert [(job.name, job.status) for job in jobs] == [
        ("seed0", "finished"), ("seed1", "failed"), ("seed=2", "never started"), ("seed3", "started")]
    assert jobs[1].error == "JobFailed: seed=1 stopped" and jobs[1].folder == tmp_path / "seed1"
    assert [job.name for job in missing_jobs(tmp_path)] == ["seed1", "seed=2", "seed3"]
    assert len(sweep_records(tmp_path)) == 2 and sweep_records(tmp_path / "seed0") == []


def test_search_trials_counts_every_trial_of_each_search(tmp_path):
    for search, trials in (("a", 3), ("b", 2)):
        for k in range(trials):
            (tmp_path / search / f"trial{k}").mkdir(parents=True)
            (tmp_path / search / f"trial{k}" / TRIAL_FILE).write_text("{}")
    assert search_trials(tmp_path) == {tmp_path / "a": 3, tmp_path / "b": 2}
    assert search_trials(tmp_path / "a") == {tmp_path / "a": 3}


@pytest.mark.slow
def test_a_failed_job_does_not_stop_the_others_and_the_sweep_names_it(tmp_path):
    sweep = tmp_path / "sweep"
    # an interpolated override (as the Makefile's walk-forward one) is matched as typed, not as resolved
    done = subprocess.run([sys.executable, "-m", "learners.train", "-m", *SMOKE, "seed=7,-1,0",
                           'evaluation.pre_cost="${eq:${seed},7}"', f"hydra.sweep.dir={sweep}",
                           "hydra.sweep.subdir=seed${seed}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode != 0 and "seed=-1 is out of range" in done.stderr
    record, = sweep_records(sweep)
    assert record["launcher"] == "basic" and record["sweeper"] == "basic"
    assert [job[-2] for job in record["jobs"]] == ["seed=7", "seed=-1", "seed=0"]
    jobs = {job.overrides[-2]: job for job in sweep_jobs(sweep)}
    assert len(jobs) == 3
    assert jobs["seed=7"].status == jobs["seed=0"].status == "finished"     # the job after the failure ran
    assert jobs["seed=-1"].status == "failed" and "seed=-1 is out of range" in jobs["seed=-1"].error
    assert json.loads((sweep / "seed7" / "eval" / "metrics.json").read_text())["pre_cost"]
    assert not json.loads((sweep / "seed0" / "eval" / "metrics.json").read_text())["pre_cost"]
    listed = subprocess.run([sys.executable, "-m", "learners.run.sweep", str(sweep)], capture_output=True, text=True,
                            timeout=120)
    assert "launcher basic" in listed.stdout and "seed=-1: failed in" in listed.stdout
    assert "seed=-1 is out of range" in listed.stdout
