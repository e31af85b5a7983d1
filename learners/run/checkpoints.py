"""A phase's checkpoints in its run folder: `phase<k>/checkpoints/{last,best,pretrained}.ckpt`
and a `done` marker once the phase has finished.

`last` is written every `checkpoint_every` rollouts (a killed run resumes from it), `best` at each
new best validation Sharpe, `pretrained` once phase 1's CQL pre-training is over. Checkpoints hold
state dicts and plain values only (`learners.fabric.save_checkpoint`: rank 0 writes atomically,
every process waits), so they load with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric

from learners.fabric import load_checkpoint, save_checkpoint

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

    def load(self, which: str, objects: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
        """Restore `objects` that have `load_state_dict` in place from the checkpoint; returns
        the checkpoint (its plain values, e.g. the iteration, included)."""
        return load_checkpoint(self.path(which), objects, device)
