"""A phase's checkpoints in its run folder: `phase<k>/checkpoints/{last,best}.ckpt` and a `done`
marker once the phase has finished.

Checkpoints hold state dicts and plain values only (loadable with `torch.load(...,
weights_only=True)`). Rank 0 writes each to a temporary file and renames it, so a run killed
mid-write keeps its previous checkpoint intact; every process then waits at a barrier.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric import Fabric

CHECKPOINTS = ("last", "best")


def _state(objects: dict[str, Any]) -> dict[str, Any]:
    """Modules, optimizers and learners as their state dicts; plain values as they are."""
    return {name: value.state_dict() if hasattr(value, "state_dict") else value for name, value in objects.items()}


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
        if fabric.global_rank == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.path(which)
            tmp = target.with_name(target.name + ".tmp")
            torch.save(_state(objects), tmp)
            os.replace(tmp, target)
        fabric.barrier()

    def mark_done(self, fabric: Fabric) -> None:
        if fabric.global_rank == 0:
            (self.folder / "done").touch()
        fabric.barrier()

    def load(self, which: str, objects: dict[str, Any], device: torch.device | str = "cpu") -> dict[str, Any]:
        """Restore `objects` that have `load_state_dict` in place from the checkpoint; returns
        the checkpoint (its plain values, e.g. the iteration, included)."""
        path = self.path(which)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path}")
        state = torch.load(path, map_location=device, weights_only=True)
        missing = sorted(name for name in objects if name not in state)
        if missing:
            raise KeyError(f"checkpoint {path} lacks {missing}; it holds {sorted(state)}")
        for name, value in objects.items():
            if hasattr(value, "load_state_dict"):
                value.load_state_dict(state[name])
        return state
