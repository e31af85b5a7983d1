"""A phase's checkpoints in its run folder: `phase<k>/checkpoints/{last,best,pretrained}.ckpt`,
a `done` marker once the phase has finished, and the rows of its replay buffer.

`last` is written every `checkpoint_every` rollouts (a killed run resumes from it), `best` at each
new best validation Sharpe, `pretrained` once phase 1's CQL pre-training is over. Checkpoints hold
state dicts and plain values only (`learners.fabric.save_checkpoint`: rank 0 writes atomically,
every process waits), so they load with `torch.load(..., weights_only=True)`.

A replay buffer (the meta-controller's) is not in the checkpoints: at each save the rows added
since the previous save go to `checkpoints/replay/<rollout>.pt`, so every transition is written
once, and a checkpoint records only the buffer's count. Restoring applies those files in order up
to the checkpoint's rollout, which rebuilds the buffer exactly as it was then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric

from buffers.replay import ReplayBuffer, Transitions
from learners.fabric import load_checkpoint, read_state, save_checkpoint, write_state

CHECKPOINTS = ("last", "best", "pretrained")


class PhaseCheckpoints:
    """The checkpoints of phase `phase` under `run_dir`."""

    def __init__(self, run_dir: str | Path, phase: str) -> None:
        self.folder = Path(run_dir) / phase / "checkpoints"

    def path(self, which: str) -> Path:
        if which not in CHECKPOINTS:
            raise KeyError(f"checkpoint '{which}' is not one of {CHECKPOINTS}")
        return self.folder / f"{which}.ckpt"

    @property
    def done(self) -> bool:
        return (self.folder / "done").exists()

    def exists(self, which: str) -> bool:
        return self.path(which).exists()

    def save(self, fabric: Fabric, which: str, objects: dict[str, Any]) -> None:
        save_checkpoint(fabric, self.path(which), objects)

    def mark_done(self, fabric: Fabric) -> None:
        if fabric.global_rank == 0:
            (self.folder / "done").touch()
        fabric.barrier()

    @property
    def replay(self) -> ReplayRows:
        return ReplayRows(self.folder / "replay")

    def recorded(self, which: str, key: str) -> Any:
        """A plain value the checkpoint recorded (its rollout, its wall seconds), None if it is
        absent or lacks the key."""
        return read_state(self.path(which)).get(key) if self.exists(which) else None

    def load(self, which: str, objects: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
        """Restore `objects` that have `load_state_dict` in place from the checkpoint; returns
        the checkpoint (its plain values, e.g. the iteration, included)."""
        return load_checkpoint(self.path(which), objects, device)


class ReplayRows:
    """A replay buffer's rows beside a phase's checkpoints (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved = 0                 # the buffer's count at the last save or restore

    def _path(self, iteration: int) -> Path:
        return self.folder / f"{iteration + 1:07d}.pt"       # the initial validation saves at rollout -1

    def save(self, fabric: Fabric, replay: ReplayBuffer, iteration: int) -> None:
        """The rows added since the last save, as rollout `iteration`'s file (rank 0 writes)."""
        if fabric.global_rank == 0 and replay.added > self.saved:
            rows, transitions = replay.rows_since(self.saved)
            write_state(self._path(iteration), {"rows": rows, "added": replay.added, **vars(transitions)})
        self.saved = replay.added
        fabric.barrier()

    def restore(self, replay: ReplayBuffer, iteration: int, added: int) -> None:
        """`replay` as it was when rollout `iteration`'s checkpoint recorded the count `added`."""
        for path in sorted(self.folder.glob("*.pt")) if self.folder.exists() else []:
            if int(path.stem) > iteration + 1:
                break
            state = read_state(path, replay.device)
            replay.put(state.pop("rows"), Transitions(**{k: v for k, v in state.items() if k != "added"}),
                       int(state["added"]))
        if replay.added != added:
            raise ValueError(f"{self.folder}: the replay files up to rollout {iteration} hold {replay.added} "
                             f"transitions, the checkpoint recorded {added}")
        self.saved = added
