"""What a user of `python -m learners.train` sees: a progress line per phase (redrawn in place on a
terminal, plain lines in a log), a short start summary naming the full config, the console in the
run's log file; and a resume on the command line that continues with the run's recorded config."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from learners.experiment.loop import ConsoleLog, Progress

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
         "phase=1"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_progress_line_is_redrawn_on_the_console_only(monkeypatch):
    console, log = Terminal(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", ConsoleLog(console, log))
    progress = Progress("phase1", 4, 0, enabled=True)
    progress.validation(0.25)
    progress.rollout(0, 1234.0)
    progress.close()
    drawn = console.getvalue()
    assert "\rphase1: rollout 1/4, 1,234 env-steps/s, ETA " in drawn and "validation Sharpe +0.250" in drawn
    assert log.getvalue() == ""


def test_without_a_terminal_progress_is_a_plain_line_per_validation(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    progress = Progress("phase2", 4, 0, enabled=True)
    progress.rollout(0, 10.0)
    progress.rollout(1, 10.0)
    progress.validation(-0.5)
    progress.close()
    assert "\r" not in out.getvalue()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("phase2: rollout 2/4, 10 env-steps/s, ETA ") and "Sharpe -0.500" in out.getvalue()
    silent = io.StringIO()
    monkeypatch.setattr(sys, "stdout", silent)
    Progress("phase2", 4, 0, enabled=False).validation(1.0)        # other processes than rank 0
    assert silent.getvalue() == ""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "learners.train", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


@pytest.mark.slow
def test_the_command_line_start_log_and_resume(tmp_path):
    first = cli(*SMOKE, "evaluation.flat_ppo=true", "experiment=cli", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs" / "cli").iterdir()
    # a short summary naming the full config, not the config itself
    assert f"the full config: {run_dir / '.hydra' / 'config.yaml'}" in first.stdout
    assert "learner:" not in first.stdout and len(first.stdout.splitlines()) < 30
    # the log holds what the console showed
    log = (run_dir / "train.log").read_text()
    for line in first.stdout.splitlines():
        assert line in log
    record = (run_dir / ".hydra" / "config.yaml").read_text()
    assert not (run_dir / ".lock").exists()

    # resume with no overrides: the recorded config (flat PPO and smoke budget included), the record kept
    resumed = cli("resume=true", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "budget smoke" in resumed.stdout and "flat_ppo" in resumed.stdout
    assert set(json.loads((run_dir / "eval" / "metrics.json").read_text())["policies"]) == \
        {"hierarchy", "flat_ppo", "equal_weight"}
    assert (run_dir / ".hydra" / "config.yaml").read_text() == record
    assert "evaluation.flat_ppo=true" in yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())

    # an override that contradicts the record is refused, naming the key
    refused = cli("resume=true", f"hydra.run.dir={run_dir}", "budget=demo", cwd=tmp_path)
    assert refused.returncode != 0 and "budget.num_envs=4 -> 256" in refused.stderr
    invocations = [json.loads(line) for line in (run_dir / "invocations.jsonl").read_text().splitlines()]
    assert [line["resume"] for line in invocations] == [False, True]
    assert invocations[1]["overrides"] == ["resume=true"]


def test_the_report_help_says_what_the_command_does_and_its_settings():
    shown = subprocess.run([sys.executable, "-m", "eval.report", "--help"], capture_output=True, text=True,
                           timeout=300, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert shown.returncode == 0 and shown.stdout.startswith("python -m eval.report runs=")
    assert "resamples: 10000" in shown.stdout and "Configuration groups" not in shown.stdout
