"""The run folder: the one module that knows its layout, with the readers and writers of its
files (every file written whole or not at all, through `storage.atomic`).

    .hydra/config.yaml              the resolved TrainConfig, written once at the first start (a resume keeps it)
    .hydra/overrides.yaml           the command-line overrides of the first start
    invocations.jsonl               one line per start or resume: time, pid, host, overrides
    train.log                       what the console showed (progress bars aside)
    .lock                           the pid of the process writing the run, while it runs
    resolved.yaml                   the effective settings (`learners.run.settings.RunSettings`)
    phase1/ phase2/ phase3/ flat_ppo/
        events.out.tfevents.*       TensorBoard scalars
        validation.jsonl            one line per validation backtest
        checkpoints/                `learners.run.checkpoints`
    phase1/offline/<domain>.npz     phase 1's CQL datasets
    eval/metrics.json               an `EvaluationRecord`; written last, it marks the run finished
    eval/<policy>_{returns,weights,costs,contributions}.parquet            post-cost
    eval/<policy>_precost_{returns,weights,costs,contributions}.parquet    trading costs scaled to 0
    eval/decisions.jsonl            the hierarchy's decision log
    eval/regimes.parquet            detected regime probabilities on the split, columns regime_0..K-1
    eval/universes.parquet          every policy's walk on each fresh test universe (`eval.universes`)
    eval/walk_forward.json          walk-forward folds and the stitched record (`walk_forward` below)
    eval/walk_forward_returns.parquet
    walk_forward/fold_<k>/          each walk-forward fold's training, a run folder of its own
    backtest/<split>/               `python -m eval.backtest` replays (frames, decisions.jsonl,
                                    summary_<policy>.json)

One process writes a run folder at a time: `lock()` holds `.lock` (an exclusive `flock` on a file
holding the writer's pid) while a run trains; a second writer is refused naming that pid, and a
lock left by a process that died is reclaimed, saying so.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import OmegaConf

from hierarchy.decision_log import read_decision_log
from learners.run.checkpoints import PhaseCheckpoints
from learners.run.config import TrainConfig
from learners.run.settings import TRAINED_PHASES, RunSettings
from storage.atomic import atomic_path, write_json, write_text

FRAME_KINDS = ("returns", "weights", "costs", "contributions")
PRE_COST = "_precost"            # suffix of a policy's frames walked with trading costs scaled to 0


@dataclass
class TrainingRecord:
    """What training spent: wall seconds and env steps of each part that ran here."""

    wall_s: dict[str, float]
    env_steps: dict[str, int]
    world_size: int = 1


@dataclass
class EvaluationRecord:
    """What `eval/metrics.json` holds: the evaluated split, the run's identity and universe, and
    each policy's summary metrics post-cost ("policies") and pre-cost (NaN stored as null)."""

    split: str
    market: str
    periods_per_year: float
    seed: int
    ablation: str
    budget: str
    symbols: list[str]
    domains: dict[str, list[str]]
    first_bar: str
    last_bar: str
    leak_next_return: bool
    policies: dict[str, dict[str, float | None]]
    pre_cost: dict[str, dict[str, float | None]]
    training: TrainingRecord

    @classmethod
    def from_json(cls, content: dict[str, Any], path: Path) -> EvaluationRecord:
        names = [f.name for f in dataclasses.fields(cls)]
        missing, unknown = sorted(set(names) - set(content)), sorted(set(content) - set(names))
        if missing or unknown:
            raise ValueError(f"{path}: not an evaluation record" + (f"; missing keys {missing}" if missing else "")
                             + (f"; unknown keys {unknown}" if unknown else ""))
        return cls(**{**content, "training": TrainingRecord(**content["training"])})


def write_frames(folder: Path, name: str, frames: dict[str, pd.DataFrame]) -> None:
    """`<folder>/<name>_<kind>.parquet` for each frame (kind: one of FRAME_KINDS)."""
    for kind, frame in frames.items():
        if kind not in FRAME_KINDS:
            raise KeyError(f"frame kind '{kind}' is not one of {FRAME_KINDS}")
        with atomic_path(folder / f"{name}_{kind}.parquet") as temporary:
            frame.to_parquet(temporary)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary)


def _read(path: Path, parse: Callable[[Any], Any], what: str) -> Any:
    try:
        with path.open() as file:
            return parse(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: the run has no {what}") from None
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: unreadable {what}: {error}") from None


def _typed(schema: type, path: Path, what: str) -> Any:
    """The YAML file at `path` as the dataclass `schema` (a key the schema lacks fails naming it)."""
    content = _read(path, yaml.safe_load, what)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), content or {}))
    except Exception as error:
        raise ValueError(f"{path}: the {what} does not fit {schema.__name__}: {error}") from None


class RunFolderLocked(RuntimeError):
    """Another live process is writing the run folder."""


class RunFolder:
    """The files of one run (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunFolder:
        """The run a checkpoint (`<run>/<phase>/checkpoints/<which>.ckpt`) belongs to."""
        return cls(Path(checkpoint).parents[2])

    # ------------------------------------------------------------------ config and settings
    @property
    def config_file(self) -> Path:
        return self.path / ".hydra" / "config.yaml"

    @property
    def settings_file(self) -> Path:
        return self.path / "resolved.yaml"

    def write_config(self, config: TrainConfig, overrides: Sequence[str] = ()) -> None:
        """The resolved config and the overrides it came from, at the run's first start only:
        a resumed run keeps its original record."""
        if not self.config_file.exists():
            write_text(self.config_file.with_name("overrides.yaml"), yaml.safe_dump(list(overrides)))
            write_text(self.config_file, OmegaConf.to_yaml(OmegaConf.structured(config)))

    @property
    def invocations_file(self) -> Path:
        return self.path / "invocations.jsonl"

    def record_invocation(self, overrides: Sequence[str], resume: bool) -> None:
        """Append this start (or resume) to invocations.jsonl: the history of a run's commands."""
        line = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "pid": os.getpid(),
                "host": socket.gethostname(), "resume": resume, "overrides": list(overrides)}
        self.path.mkdir(parents=True, exist_ok=True)
        with self.invocations_file.open("a") as file:
            file.write(json.dumps(line) + "\n")

    def invocations(self) -> list[dict[str, Any]]:
        if not self.invocations_file.exists():
            return []
        return [json.loads(line) for line in self.invocations_file.read_text().splitlines()]

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    # ------------------------------------------------------------------ one writer at a time
    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder for this process (see the module docstring); RunFolderLocked if
        another live process holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode().strip() or "unknown"
                os.close(fd)
                raise RunFolderLocked(f"{self.path} is being written by process {holder} (its lock "
                                      f"{self.lock_file}); wait for it to finish, or train in a new folder") from None
            if os.path.exists(self.lock_file) and os.stat(self.lock_file).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)               # the holder removed the file as we locked it: lock the new one
        stale = os.read(fd, 32).decode().strip()
        if stale:
            print(f"{self.path}: reclaimed the lock left by process {stale}, which is gone", file=sys.stderr)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            self.lock_file.unlink(missing_ok=True)
            os.close(fd)

    def discard_if_unused(self) -> None:
        """Remove the folder if it holds nothing but hydra's own files (its job log and `.hydra`):
        what a refused start leaves behind."""
        if self.path.is_dir() and all(entry.name == ".hydra" or (entry.suffix == ".log" and entry.is_file())
                                      for entry in self.path.iterdir()):
            shutil.rmtree(self.path)

    def read_config(self) -> TrainConfig:
        return _typed(TrainConfig, self.config_file, "resolved config")

    def write_settings(self, settings: RunSettings) -> None:
        write_text(self.settings_file, OmegaConf.to_yaml(OmegaConf.structured(settings)))

    def read_settings(self) -> RunSettings:
        return _typed(RunSettings, self.settings_file, "resolved settings")

    # ------------------------------------------------------------------ phases
    def phase_dir(self, phase: str) -> Path:
        return self.path / phase

    def checkpoints(self, phase: str) -> PhaseCheckpoints:
        return PhaseCheckpoints(self.path, phase)

    def validation_log(self, phase: str) -> Path:
        return self.phase_dir(phase) / "validation.jsonl"

    def validation_records(self, phase: str) -> list[dict[str, Any]]:
        """`phase`'s validations in order ({rollout, env_steps, sharpe} each); [] without a log."""
        log = self.validation_log(phase)
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []

    def offline_dataset(self, domain: str) -> Path:
        return self.phase_dir("phase1") / "offline" / f"{domain}.npz"

    def started_phases(self) -> list[str]:
        """The phases that have written checkpoints here."""
        return [phase for phase in TRAINED_PHASES if self.checkpoints(phase).folder.exists()]

    def final_checkpoint(self) -> Path:
        """The best checkpoint of the run's last finished phase."""
        for phase in ("phase3", "phase2", "phase1"):
            if self.checkpoints(phase).done:
                return self.checkpoints(phase).path("best")
        raise FileNotFoundError(f"{self.path}: no finished phase (no phase*/checkpoints/done)")

    def policy_checkpoint(self, policy: str) -> Path:
        """The best checkpoint of a learned policy: the flat PPO's own when the run trained it
        beside the hierarchy (`evaluation.flat_ppo`), else the last finished phase's."""
        flat = self.checkpoints("flat_ppo")
        return flat.path("best") if policy == "flat_ppo" and flat.done else self.final_checkpoint()

    def fold(self, k: int) -> RunFolder:
        """Walk-forward fold k's own run folder."""
        return RunFolder(self.path / "walk_forward" / f"fold_{k}")

    def backtest_dir(self, split: str) -> Path:
        return self.path / "backtest" / split

    # ------------------------------------------------------------------ evaluation
    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def metrics_file(self) -> Path:
        return self.eval_dir / "metrics.json"

    @property
    def decisions_file(self) -> Path:
        return self.eval_dir / "decisions.jsonl"

    @property
    def finished(self) -> bool:
        return self.metrics_file.exists()

    def write_evaluation(self, record: EvaluationRecord, frames: dict[str, dict[str, pd.DataFrame]],
                         regimes: pd.DataFrame | None = None, universes: pd.DataFrame | None = None) -> None:
        """Every policy's frames (keyed by file name: `<policy>` or `<policy>_precost`), the
        detected regimes and the test universes' walks if given, and metrics.json last, which
        marks the run finished."""
        for name, kinds in frames.items():
            write_frames(self.eval_dir, name, kinds)
        if regimes is not None:
            write_parquet(self.eval_dir / "regimes.parquet", regimes.rename_axis("timestamp"))
        if universes is not None:
            write_parquet(self.universes_file, universes)
        write_json(self.metrics_file, dataclasses.asdict(record))

    def read_evaluation(self) -> EvaluationRecord:
        return EvaluationRecord.from_json(_read(self.metrics_file, json.load, "evaluation metrics"), self.metrics_file)

    def frame(self, policy: str, kind: str, pre_cost: bool = False) -> pd.DataFrame:
        """eval/<policy>[_precost]_<kind>.parquet (kind: one of FRAME_KINDS)."""
        path = self.eval_dir / f"{policy}{PRE_COST if pre_cost else ''}_{kind}.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: run {self.path} has no {kind} of policy '{policy}'")
        return pd.read_parquet(path)

    def has_frame(self, policy: str, kind: str) -> bool:
        return (self.eval_dir / f"{policy}_{kind}.parquet").exists()

    def decisions(self) -> list[dict[str, Any]] | None:
        return read_decision_log(self.decisions_file) if self.decisions_file.exists() else None

    def regimes(self) -> pd.DataFrame | None:
        path = self.eval_dir / "regimes.parquet"
        return pd.read_parquet(path) if path.exists() else None

    @property
    def universes_file(self) -> Path:
        return self.eval_dir / "universes.parquet"

    def universes(self) -> pd.DataFrame | None:
        """The test universes' walks: one row per (universe, policy), or None without them."""
        return pd.read_parquet(self.universes_file) if self.universes_file.exists() else None

    def write_walk_forward(self, record: dict[str, Any], returns: pd.DataFrame) -> None:
        """The walk-forward record and its stitched out-of-sample returns (one column per policy).

        walk_forward.json: {"config": {...}, "folds": [{"test_start", "test_end", "train_start",
        "train_end": dates, "policies": {name: summary}}, ...], "stitched": {name: summary}}"""
        write_parquet(self.eval_dir / "walk_forward_returns.parquet", returns.rename_axis("timestamp"))
        write_json(self.eval_dir / "walk_forward.json", record)

    def walk_forward(self) -> dict[str, Any] | None:
        path = self.eval_dir / "walk_forward.json"
        return _read(path, json.load, "walk-forward results") if path.exists() else None
