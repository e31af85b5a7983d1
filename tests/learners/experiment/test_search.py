"""Hyperparameter search: the median rule on hand-made trials, the objective (the best
validation Sharpe, never the test split), and an Optuna smoke search through hydra's sweeper
that writes its study and trial count for the report."""

import json
import subprocess
import sys

import optuna
import pytest
import yaml

from learners.experiment.search import MedianRule, best_so_far, completed_trials, trial_result
from learners.run.config import SearchConfig
from learners.run.folder import RunFolder
from learners.run.sweep import JOB_FILE, TRIAL_FILE, search_trials, sweep_records


def _trial(folder, sharpes, status="completed", pruned=False):
    """A trial folder with phase1's validation log (env steps 0, 100, ...) and its records."""
    run = RunFolder(folder)
    run.validation_log("phase1").parent.mkdir(parents=True)
    run.validation_log("phase1").write_text("".join(json.dumps({"rollout": k - 1, "env_steps": 100 * k, "sharpe": s})
                                                    + "\n" for k, s in enumerate(sharpes)))
    (folder / JOB_FILE).write_text(json.dumps({"status": status}))
    if status == "completed":
        (folder / TRIAL_FILE).write_text(json.dumps({"objective": max(sharpes), "pruned": pruned}))
    return run


def test_the_median_rule_prunes_below_the_completed_trials_median(tmp_path):
    for k, sharpes in enumerate([[0.0, 0.4, 0.5], [0.0, 0.2, 0.9], [0.0, 1.0, 1.1]]):
        _trial(tmp_path / f"trial{k}", sharpes)
    _trial(tmp_path / "pruned", [0.0, 5.0], pruned=True)          # not a completed trial: ignored
    _trial(tmp_path / "running", [0.0, 5.0], status="started")
    me = _trial(tmp_path / "me", [0.0])
    assert [t.path.name for t in completed_trials(me)] == ["trial0", "trial1", "trial2"]
    assert best_so_far(RunFolder(tmp_path / "trial1"), "phase1") == {0: 0.0, 100: 0.2, 200: 0.9}
    rule = MedianRule(SearchConfig(trial=True, prune=True, startup_trials=3, warmup_validations=2), me)
    assert rule.verdict("phase1", 2, 100, 0.39) == pytest.approx(0.4)     # median of 0.4, 0.2, 1.0
    assert rule.verdict("phase1", 2, 100, 0.41) is None
    assert rule.verdict("phase1", 1, 100, -9.0) is None                   # warm-up
    assert rule.verdict("phase2", 2, 100, -9.0) is None                   # no completed trial has phase2 there
    assert MedianRule(SearchConfig(trial=True, prune=True, startup_trials=4), me).verdict("phase1", 2, 100, -9) is None
    assert MedianRule(SearchConfig(trial=True, prune=False), me).verdict("phase1", 2, 100, -9.0) is None
    result = trial_result(RunFolder(tmp_path / "trial1"))
    assert (result.objective, result.phase, result.pruned) == (0.9, "phase1", False)
    assert json.loads((tmp_path / "trial1" / TRIAL_FILE).read_text())["objective"] == 0.9


@pytest.mark.slow
def test_an_optuna_smoke_search_writes_its_study_and_trial_count(tmp_path):
    sweep = tmp_path / "search"
    done = subprocess.run([sys.executable, "-m", "learners.train", "-m", "hpo=hierarchy", "budget=smoke",
                           "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
                           "hydra.sweeper.n_trials=3", "search.startup_trials=1", f"hydra.sweep.dir={sweep}"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    study = optuna.load_study(study_name="hierarchy", storage=f"sqlite:///{sweep / 'study.db'}")
    assert len(study.trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    record, = sweep_records(sweep)
    assert (record["sweeper"], record["trials"], record["jobs"]) == ("optuna", 3, None)
    assert search_trials(sweep) == {sweep: 3}
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    objectives = []
    for k, trial in enumerate(study.trials):
        folder = RunFolder(sweep / f"trial{k}")
        result = json.loads((folder.path / TRIAL_FILE).read_text())
        assert trial.value == result["objective"] == max(best_so_far(folder, result["phase"]).values())
        assert not (folder.path / "eval").exists()                  # the test split is never walked
        objectives.append(result["objective"])
    assert best["best_value"] == max(objectives)
