"""`python -m learners.train`: the hydra entry point of the three-phase curriculum.

    python -m learners.train phase=1            # specialists: CQL pre-training, then PPO
    python -m learners.train phase=2            # meta-controller (runs phase 1 first if this run has none)
    python -m learners.train phase=3 init_from=runs/default/<timestamp>   # joint, from an earlier run
    python -m learners.train phase=all budget=demo
    python -m learners.train -m ablation=full,no_meta seed=0,1,2          # a sweep
    python -m learners.train -m ablation=full,no_meta seed=0,1,2 hydra/launcher=local   # in parallel
    python -m learners.train -m hpo=hierarchy hydra.sweeper.n_trials=40   # a hyperparameter search
    python -m learners.train phase=all resume=true hydra.run.dir=runs/default/<timestamp>

It composes `configs/train.yaml` (typed by `learners.run.config.TrainConfig`), builds the
workspace (market, splits, features and the run's effective settings, written to
`resolved.yaml`), runs the phases the config asks for (each phase needs the one before: taken
from this run folder, from `init_from`, or run first, saying so), then evaluates the best
checkpoint and the baselines on the test split and prints the results table. The run folder's
layout is in `learners.run.folder`.

Every setting is checked before anything is built (a refused start leaves no run folder). A run
folder is `runs/<experiment>/<timestamp>_<pid>`, so two runs started in the same second do not
share one, and one process writes it at a time. `resume=true` continues the run with the config
recorded in its folder: an override on the command line must agree with it. The start prints a
short summary and where the full config lies; the console is copied to the run's `train.log`.

In a sweep (`-m`) each job is one run folder; a job that fails raises (hydra records it and the
other jobs go on) and `learners.run.sweep` records the launcher and every job's status. A
hyperparameter-search trial (`search.trial=true`, set by `configs/hpo/`) skips the test split
and returns its validation Sharpe to the sweeper (`learners.experiment.search`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from eval.oracle import EVALUATED_BASELINES, ORACLE_COST_AWARE
from learners.experiment.curriculum import train_policies
from learners.experiment.evaluation import evaluate, results_table
from learners.experiment.loop import ConsoleLog, RunContext, TrainingStopped, open_log
from learners.experiment.search import TrialPruned, TrialResult, trial_result
from learners.experiment.walk_forward import run_walk_forward
from learners.fabric import make_fabric
from learners.run.config import TrainConfig, check_config, register_configs
from learners.run.folder import EvaluationRecord, RunFolder, RunFolderLocked, TrainingRecord
from learners.run.settings import TRAINED_PHASES
from learners.run.workspace import Workspace

register_configs()
OmegaConf.register_new_resolver("pid", lambda: os.getpid(), replace=True)   # hydra.run.dir: one per process
# a setting that depends on another: 'evaluation.walk_forward.enabled=${eq:${ablation.name},full}' (the Makefile)
OmegaConf.register_new_resolver("eq", lambda a, b: a == b, replace=True)


def check(config: TrainConfig) -> None:
    """Every setting of `config` (`check_config`) and its baselines' names, before any work."""
    check_config(config)
    unknown = sorted(set(config.evaluation.baselines) - set(EVALUATED_BASELINES))
    if unknown:
        raise ValueError(f"evaluation.baselines={list(config.evaluation.baselines)}: {unknown} not among "
                         f"{EVALUATED_BASELINES}")
    oracles = sorted({"oracle", ORACLE_COST_AWARE} & set(config.evaluation.baselines))
    if oracles and config.market.source != "synthetic":
        raise ValueError(f"evaluation.baselines: {oracles} trade the ground truth of a synthetic market; "
                         f"market.source is '{config.market.source}'")


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def differences(recorded: Any, given: Any, key: str = "") -> list[str]:
    """`key=recorded -> given` for every leaf where two plain configs differ."""
    if isinstance(recorded, dict) and isinstance(given, dict):
        return [line for name in sorted(set(recorded) | set(given))
                for line in differences(recorded.get(name), given.get(name), f"{key}.{name}" if key else name)]
    return [] if recorded == given else [f"{key}={recorded} -> {given}"]


def _as_plain(config: TrainConfig) -> dict:
    return _plain(OmegaConf.structured(dataclasses.replace(config, resume=False)))


def check_resumable(folder: RunFolder, config: TrainConfig) -> None:
    """A resumed run continues with the config recorded in its folder: ValueError naming each
    key where `config` differs from it."""
    changed = differences(_as_plain(folder.read_config()), _as_plain(config))
    if changed:
        raise ValueError(f"{folder.path} was recorded with other settings ({'; '.join(changed[:5])}); a resumed "
                         f"run keeps its config: drop those overrides, or train in a new folder")


def resumed_config(folder: RunFolder, composed: DictConfig, overrides: Sequence[str]) -> TrainConfig:
    """The config a `resume=true` command continues with: the one recorded in the run folder.
    An override on the command line must agree with it (ValueError naming the key otherwise)."""
    recorded = folder.read_config()
    record = OmegaConf.structured(recorded)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume":
            continue
        changed = differences(_plain(OmegaConf.select(record, key)), _plain(OmegaConf.select(composed, key)), key)
        if changed:
            raise ValueError(f"override {override.input_line}: this run was recorded with "
                             f"{'; '.join(changed[:5])}; a resumed run keeps its config (drop the override, "
                             f"or train in a new folder)")
    return dataclasses.replace(recorded, resume=True)


def _earlier_wall_s(folder: RunFolder, config: TrainConfig) -> dict[str, float]:
    """Wall seconds earlier invocations spent on each phase, up to its last checkpoint."""
    if not config.resume:
        return {}
    recorded = {phase: folder.checkpoints(phase).recorded("last", "wall_s") for phase in TRAINED_PHASES}
    return {phase: float(wall) for phase, wall in recorded.items() if wall is not None}


def _accumulated(training: TrainingRecord, earlier: dict[str, float], ws: Workspace) -> TrainingRecord:
    """`training` with the seconds earlier invocations spent on each phase added."""
    wall = {phase: training.wall_s.get(phase, 0.0) + earlier.get(phase, 0.0)
            for phase in TRAINED_PHASES if phase in training.wall_s or phase in earlier}
    env_steps = {phase: ws.settings.phase(phase).env_steps for phase in wall}
    return dataclasses.replace(training, wall_s=wall, env_steps=env_steps)


def first_process() -> bool:
    """Whether this is the process that becomes rank 0 (Fabric's children carry LOCAL_RANK > 0)."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0))) == 0


def train(config: TrainConfig, run_dir: Path,
          overrides: Sequence[str] = ()) -> EvaluationRecord | TrialResult | None:
    """Everything `main` does, given a resolved config and the run folder (`overrides`: the
    command line, for the run's record); returns what the evaluation wrote to metrics.json, or a
    search trial's result (None on processes other than rank 0). The run folder is held
    (`RunFolder.lock`) and the console copied to its log while it trains."""
    check(config)
    folder = RunFolder(run_dir)
    started = folder.started_phases()
    if started and not config.resume:
        raise FileExistsError(f"{run_dir} already holds checkpoints of {started}; pass resume=true to "
                              f"continue it, or train in a new folder")
    if config.resume and folder.config_file.exists():
        check_resumable(folder, config)
    with ExitStack() as held:
        if first_process():
            held.enter_context(folder.lock())
            log = held.enter_context(open_log(folder.log_file))
            held.enter_context(redirect_stdout(ConsoleLog(sys.stdout, log)))
            held.enter_context(redirect_stderr(ConsoleLog(sys.stderr, log)))
            folder.write_config(config, overrides)
            folder.record_invocation(overrides, config.resume)
        return _train(config, folder)


def _train(config: TrainConfig, folder: RunFolder) -> EvaluationRecord | TrialResult | None:
    fabric = make_fabric(dataclasses.replace(config.fabric, seed=config.seed, log_dir=""))
    fabric.print(f"{'resuming' if config.resume else 'run'} {folder.path}: phase {config.phase}, ablation "
                 f"{config.ablation.name}, budget {config.budget.name}, seed {config.seed}, market "
                 f"{config.market.source}; the full config: {folder.config_file}")
    earlier = _earlier_wall_s(folder, config)
    ws = Workspace.build(config, fabric.world_size)
    if fabric.global_rank == 0:
        folder.write_settings(ws.settings)
    fabric.print(f"market {ws.market.name}: {ws.market.n_instruments} instruments x {ws.market.n_bars} bars; "
                 f"train {ws.splits.train.n_bars}, validation {ws.splits.validation.n_bars}, "
                 f"test {ws.splits.test.n_bars}; {len(ws.features.instrument_names)} instrument features, "
                 f"warm-up {ws.warmup_bars} bars; effective settings: {folder.settings_file}"
                 + ("; CONTROL: next-bar returns leak into the observations" if config.leak_next_return else ""))
    ctx = RunContext(ws, fabric, folder, config.resume)
    try:
        policies, training = train_policies(ctx)
    except TrialPruned as pruned:
        fabric.print(f"search trial pruned: {pruned}")
        return trial_result(folder, pruned) if fabric.global_rank == 0 else None
    if fabric.global_rank != 0:
        return None
    if config.search.trial:
        result = trial_result(folder)
        print(f"search trial: objective {result.objective:+.4f} (best validation Sharpe of {result.phase}); "
              f"the test split is not walked")
        return result
    if config.evaluation.walk_forward.enabled:
        run_walk_forward(ctx)
    record = evaluate(ctx, policies, _accumulated(training, earlier, ws))
    print(f"\n{record.split} split, {record.first_bar[:10]} .. {record.last_bar[:10]}, "
          f"after costs:\n{results_table(record)}")
    return record


class JobFailed(RuntimeError):
    """A sweep's job could not start or stopped: raised (not sys.exit) so that hydra records the
    job as failed and the launcher goes on with the others."""


def _stop(message: str) -> NoReturn:
    """End the process with `message` (a single run), or fail the job (one job of a sweep)."""
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise JobFailed(message)
    sys.exit(message)


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Train one run; a search trial returns its objective to the sweeper."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    overrides = list(HydraConfig.get().overrides.task)
    folder = RunFolder(run_dir)
    try:
        config: TrainConfig = OmegaConf.to_object(cfg)
        if config.resume:
            config = resumed_config(folder, cfg, overrides)
        check(config)
    except (ValueError, FileNotFoundError) as error:
        if first_process() and HydraConfig.get().mode != RunMode.MULTIRUN:
            folder.discard_if_unused()
        _stop(f"learners.train: refused to start: {error}")
    try:
        result = train(config, run_dir, overrides)
    except TrainingStopped as stopped:
        _stop(f"training stopped: {stopped}")
    except (RunFolderLocked, FileExistsError) as refused:
        _stop(f"learners.train: {refused}")
    return result.objective if isinstance(result, TrialResult) else None


if __name__ == "__main__":
    main()
