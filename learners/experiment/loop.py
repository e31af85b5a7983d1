"""The loop every phase of the curriculum runs in: rollout-and-update iterations with their
TensorBoard scalars, validation on the validation split, checkpoints, exact resume and the stop
on a NaN or exploding loss.

Every rollout reseeds torch from (seed, phase, rollout, rank), so a run resumed from its last
checkpoint repeats exactly what it would have done. A phase keeps `best.ckpt` by validation
Sharpe (never the test split; its untrained start competes too) and `last.ckpt` every
`curriculum.checkpoint_every` rollouts; a NaN or exploding loss stops the run naming the loss and
the rollout, with the last good checkpoint left in place. A hyperparameter-search trial may stop
at a validation by the median rule (`learners.experiment.search`).

What the user sees: a progress line per phase (rollouts, env-steps/s, ETA, the last validation
Sharpe), redrawn in place on a terminal and kept out of the run's log; without a terminal, a
plain line at each validation instead. `ConsoleLog` copies the console into the run's log file.
Checkpoints record the wall seconds the phase has spent, over every invocation that ran it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from lightning.fabric import Fabric
from torch.utils.tensorboard import SummaryWriter

from buffers.replay import ReplayBuffer
from learners.experiment.search import MedianRule, TrialPruned
from learners.run.config import TrainConfig
from learners.run.folder import RunFolder
from learners.run.settings import RunSettings
from learners.run.workspace import Workspace

PHASE_INDEX = {"init": 0, "phase1": 1, "phase2": 2, "phase3": 3, "flat_ppo": 4}


class TrainingStopped(RuntimeError):
    """A loss became NaN or exploded; the message names it and the last good checkpoint."""


@dataclass
class RunContext:
    """What every phase shares: the workspace, Fabric, the run folder and whether to resume."""

    ws: Workspace
    fabric: Fabric
    folder: RunFolder
    resume: bool

    @property
    def config(self) -> TrainConfig:
        return self.ws.config

    @property
    def settings(self) -> RunSettings:
        return self.ws.settings

    def seed(self, phase: str, iteration: int) -> int:
        """A seed of its own for every (run seed, phase, rollout, process)."""
        entropy = [self.config.seed, PHASE_INDEX[phase], iteration + 1, self.fabric.global_rank]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def check_losses(scalars: dict[str, float], max_abs_loss: float) -> None:
    """FloatingPointError naming the first loss that is NaN or beyond `max_abs_loss`."""
    for name, value in scalars.items():
        if "losses/" in name and not abs(value) <= max_abs_loss:
            raise FloatingPointError(f"{name} is {value} (limit curriculum.max_abs_loss={max_abs_loss})")


class ConsoleLog:
    """Stands in for sys.stdout or sys.stderr: writes go to the console and to the run's log file."""

    def __init__(self, console: TextIO, log: TextIO) -> None:
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.console.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.console.flush()

    def isatty(self) -> bool:
        return self.console.isatty()

    @property
    def encoding(self) -> str:
        return self.console.encoding


class Progress:
    """A phase's progress line (see the module docstring); silent on processes other than rank 0."""

    def __init__(self, phase: str, rollouts: int, first: int, enabled: bool) -> None:
        stdout = sys.stdout
        self.console = stdout.console if isinstance(stdout, ConsoleLog) else stdout
        self.enabled, self.live = enabled, enabled and self.console.isatty()
        self.phase, self.rollouts, self.first = phase, rollouts, first
        self.done, self.steps_per_s, self.sharpe = first, 0.0, float("nan")
        self.started = time.perf_counter()

    def line(self) -> str:
        per_rollout = (time.perf_counter() - self.started) / max(self.done - self.first, 1)
        eta = round(per_rollout * (self.rollouts - self.done)) if self.done > self.first else None
        return (f"{self.phase}: rollout {self.done}/{self.rollouts}, {self.steps_per_s:,.0f} env-steps/s, "
                f"ETA {'?' if eta is None else f'{eta // 60}:{eta % 60:02d}'}, validation Sharpe {self.sharpe:+.3f}")

    def rollout(self, iteration: int, steps_per_s: float) -> None:
        self.done, self.steps_per_s = iteration + 1, steps_per_s
        self._draw()

    def validation(self, sharpe: float) -> None:
        self.sharpe = sharpe
        if self.enabled and not self.live:
            print(self.line(), flush=True)
        self._draw()

    def _draw(self) -> None:
        if self.live:
            self.console.write("\r" + self.line() + "\x1b[K")
            self.console.flush()

    def close(self) -> None:
        if self.live:
            self.console.write("\r\x1b[K")
            self.console.flush()


def open_log(path: Path) -> TextIO:
    """The run's log file, appended to, one line at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", buffering=1)


class PhaseLog:
    """A phase's TensorBoard scalars and validation records in its folder (rank 0 writes; the
    other processes log nothing)."""

    def __init__(self, ctx: RunContext, phase: str) -> None:
        self.folder, self.phase = ctx.folder, phase
        self.writer = SummaryWriter(str(ctx.folder.phase_dir(phase))) if ctx.fabric.global_rank == 0 else None

    def scalars(self, scalars: dict[str, float], step: int) -> None:
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, step)

    def validation(self, record: dict[str, Any]) -> None:
        if self.writer is not None:
            with self.folder.validation_log(self.phase).open("a") as log:
                log.write(json.dumps(record) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class PhaseLoop:
    """Rollout-and-update iterations of one phase with logging, validation and checkpoints.

    `objects` (modules, optimizers, learners) are what its checkpoints hold; a `replay` buffer's
    rows are saved beside them (`learners.run.checkpoints.ReplayRows`); `validate()` returns the
    validation Sharpe of the current policy."""

    def __init__(self, ctx: RunContext, phase: str, objects: dict[str, Any], validate: Callable[[], float],
                 replay: ReplayBuffer | None = None) -> None:
        self.ctx, self.phase, self.objects, self.validate, self.replay = ctx, phase, objects, validate, replay
        self.checkpoints = ctx.folder.checkpoints(phase)
        self.replay_rows = self.checkpoints.replay
        self.best_sharpe = -np.inf
        self.validations, self.pruner = 0, MedianRule(ctx.config.search, ctx.folder)
        self.log = PhaseLog(ctx, phase)
        self.progress: Progress | None = None
        self.started, self.wall_before = time.perf_counter(), 0.0

    @property
    def wall_s(self) -> float:
        """Wall seconds the phase has spent, earlier invocations' up to the resumed checkpoint included."""
        return self.wall_before + time.perf_counter() - self.started

    def _save(self, which: str, iteration: int, env_steps: int) -> None:
        objects = {**self.objects, "iteration": iteration, "env_steps": env_steps, "best_sharpe": self.best_sharpe,
                   "wall_s": self.wall_s}
        if self.replay is not None:
            self.replay_rows.save(self.ctx.fabric, self.replay, iteration)
            objects["replay_added"] = self.replay.added
        self.checkpoints.save(self.ctx.fabric, which, objects)

    def _validation(self, iteration: int, env_steps: int) -> None:
        sharpe = float(self.validate())
        self.log.scalars({"validation/sharpe": sharpe}, env_steps)
        self.log.validation({"rollout": iteration, "env_steps": env_steps, "sharpe": sharpe})
        if self.progress is not None:
            self.progress.validation(sharpe)
        if sharpe > self.best_sharpe or not self.checkpoints.exists("best"):
            self.best_sharpe = max(sharpe, self.best_sharpe)
            self._save("best", iteration, env_steps)
        self.validations += 1
        fabric = self.ctx.fabric
        median = self.pruner.verdict(self.phase, self.validations, env_steps, self.best_sharpe) \
            if fabric.global_rank == 0 else None
        median = fabric.broadcast(median, src=0)          # every process stops together
        if median is not None:
            raise TrialPruned(self.phase, env_steps, self.best_sharpe, median)

    def _resume(self, rollouts: int) -> int:
        """The first rollout to run: after the last checkpoint's when resuming (its state
        restored), else 0, after validating the untrained start."""
        if self.ctx.resume and self.checkpoints.exists("last"):
            state = self.checkpoints.load("last", self.objects, self.ctx.fabric.device)
            if self.replay is not None:
                self.replay_rows.restore(self.replay, int(state["iteration"]), int(state["replay_added"]))
            self.best_sharpe = float(state["best_sharpe"])
            self.wall_before = float(state.get("wall_s", 0.0))
            self.ctx.fabric.print(f"{self.phase}: resuming after rollout {state['iteration']} of {rollouts}")
            return int(state["iteration"]) + 1
        self.progress = Progress(self.phase, rollouts, 0, self.ctx.fabric.global_rank == 0)
        self._validation(-1, 0)           # the starting point competes for the best checkpoint
        return 0

    def run(self, rollouts: int, steps_per_rollout: int, step: Callable[[int, int], dict[str, float]]) -> None:
        """`step(rollout, seed)` does one rollout and its updates and returns the scalars to log."""
        fabric, curriculum = self.ctx.fabric, self.ctx.config.curriculum
        first = self._resume(rollouts)
        progress = self.progress = self.progress or Progress(self.phase, rollouts, first, fabric.global_rank == 0)
        start = time.perf_counter()
        for iteration in range(first, rollouts):
            seed = self.ctx.seed(self.phase, iteration)
            torch.manual_seed(seed)
            env_steps = (iteration + 1) * steps_per_rollout
            try:
                scalars = step(iteration, seed)
                check_losses(scalars, curriculum.max_abs_loss)
            except FloatingPointError as error:
                kept = self.checkpoints.path("last") if self.checkpoints.exists("last") else "none yet"
                raise TrainingStopped(f"{self.phase}, rollout {iteration}: {error}. Stopped; the last good "
                                      f"checkpoint is {kept} (resume=true continues from it)") from error
            scalars["charts/SPS"] = (iteration + 1 - first) * steps_per_rollout / (time.perf_counter() - start)
            self.log.scalars(scalars, env_steps)
            progress.rollout(iteration, scalars["charts/SPS"])
            last = iteration + 1 == rollouts
            if (iteration + 1) % curriculum.validate_every == 0 or last:
                self._validation(iteration, env_steps)
            if (iteration + 1) % curriculum.checkpoint_every == 0 or last:
                self._save("last", iteration, env_steps)
        self.checkpoints.mark_done(fabric)
        self.log.close()
        progress.close()
        fabric.print(f"{self.phase}: done, {rollouts} rollouts in {self.wall_s:.0f} s, best validation Sharpe "
                     f"{self.best_sharpe:.3f}")
