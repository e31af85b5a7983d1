"""A run as one trial of a hyperparameter search: its objective, and the median rule that prunes
a hopeless trial early.

The objective is the trial's best validation Sharpe in the last phase it trained: the figure the
run's own checkpoint selection maximises, so a search never walks the test split. Hydra's Optuna
sweeper launches each trial as a separate job and can only be told a final value, so pruning
happens here, in the trial: at every validation after `search.warmup_validations`, once
`search.startup_trials` trials of the same sweep have completed, a trial whose best validation
Sharpe so far lies below the median of the completed trials' at the same phase and env step stops
(Optuna's `MedianPruner` rule, read from the trials' validation logs in the sweep folder). The
sweeper is then told the best validation Sharpe the trial reached. Each trial writes
`search.json` in its run folder: the objective, whether it was pruned, and where.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from learners.run.config import SearchConfig
from learners.run.folder import RunFolder
from learners.run.sweep import JOB_FILE, TRIAL_FILE
from storage.atomic import write_json

CURRICULUM = ("phase1", "phase2", "phase3")      # a flat policy trains in phase1's folder


class TrialPruned(RuntimeError):
    """The trial's validation Sharpe fell below the median of the completed trials' (see the module docstring)."""

    def __init__(self, phase: str, env_steps: int, best: float, median: float) -> None:
        super().__init__(f"{phase} at {env_steps} env steps: best validation Sharpe {best:+.3f} < the completed "
                         f"trials' median {median:+.3f}")
        self.phase, self.env_steps = phase, env_steps


@dataclass(frozen=True)
class TrialResult:
    """What `search.json` holds: the objective the sweeper is told and where a pruned trial stopped."""

    objective: float
    phase: str
    pruned: bool = False
    pruned_at_env_steps: int | None = None


def best_so_far(folder: RunFolder, phase: str) -> dict[int, float]:
    """{env steps: the best validation Sharpe up to them} of `phase` in `folder` ({} if it has none)."""
    records = folder.validation_records(phase)
    if not records:
        return {}
    best = np.maximum.accumulate([record["sharpe"] for record in records])
    return {int(record["env_steps"]): float(value) for record, value in zip(records, best)}


def completed_trials(folder: RunFolder) -> list[RunFolder]:
    """The other trials of `folder`'s sweep (its sibling folders) that completed without being pruned."""
    trials = []
    for job in sorted(folder.path.parent.glob(f"*/{JOB_FILE}")):
        trial = RunFolder(job.parent)
        result = trial.path / TRIAL_FILE
        if trial.path != folder.path and json.loads(job.read_text())["status"] == "completed" and result.exists() \
                and not json.loads(result.read_text())["pruned"]:
            trials.append(trial)
    return trials


class MedianRule:
    """The median rule of the module docstring (it never prunes unless `search.trial` and `search.prune`)."""

    def __init__(self, config: SearchConfig, folder: RunFolder) -> None:
        self.config, self.folder = config, folder

    def verdict(self, phase: str, validations: int, env_steps: int, best: float) -> float | None:
        """After `phase`'s `validations`-th validation, at `env_steps`, with best-so-far Sharpe
        `best`: the completed trials' median there if the trial falls below it (prune), else None."""
        if not (self.config.trial and self.config.prune) or validations < self.config.warmup_validations:
            return None
        others = [best_so_far(trial, phase).get(env_steps) for trial in completed_trials(self.folder)]
        others = [value for value in others if value is not None]
        if len(others) < self.config.startup_trials:
            return None
        median = float(np.median(others))
        return median if best < median else None


def trial_result(folder: RunFolder, pruned: TrialPruned | None = None) -> TrialResult:
    """The objective of the trial in `folder`: its best validation Sharpe in the last phase it
    trained (where it was pruned, if it was); written to `search.json`."""
    phase = pruned.phase if pruned is not None else next(
        (p for p in reversed(CURRICULUM) if best_so_far(folder, p)), None)
    if phase is None:
        raise FileNotFoundError(f"{folder.path}: no validation log of any phase; the trial has no objective")
    objective = max(best_so_far(folder, phase).values())
    result = TrialResult(objective, phase, pruned is not None, None if pruned is None else pruned.env_steps)
    write_json(folder.path / TRIAL_FILE, asdict(result))
    return result
