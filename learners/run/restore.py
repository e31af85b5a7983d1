"""A trained policy back from its checkpoint, in the workspace of the run it belongs to: how
evaluation replays a run without the training code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from hierarchy.agents import FlatAgent
from hierarchy.system import HierarchicalSystem
from learners.fabric import read_state
from learners.run.folder import RunFolder
from learners.run.workspace import Workspace

LEARNED_POLICIES: tuple[str, ...] = ("hierarchy", "flat_ppo")   # their names in the run's evaluation


@dataclass
class Policies:
    """A run's learned policies: the hierarchy, the flat PPO, or both (the flat baseline)."""

    system: HierarchicalSystem | None = None
    flat: FlatAgent | None = None

    @property
    def names(self) -> list[str]:
        """The learned policies present, by their names in the evaluation."""
        return [name for name, policy in zip(LEARNED_POLICIES, (self.system, self.flat)) if policy is not None]


def checkpoint_policy(checkpoint: str | Path) -> str:
    """The learned policy a checkpoint holds: "hierarchy" or "flat_ppo" (ValueError if neither),
    read without building the run's workspace."""
    state = read_state(checkpoint)
    if "agent" in state:
        return "flat_ppo"
    if "system" in state:
        return "hierarchy"
    raise ValueError(f"{checkpoint} holds neither a hierarchy ('system') nor a flat agent ('agent')")


def restore(checkpoint: str | Path) -> tuple[Workspace, Policies]:
    """The workspace of the run a checkpoint belongs to and its policy (the hierarchy, or the flat
    agent) loaded from it, on the CPU."""
    checkpoint = Path(checkpoint)
    policy = checkpoint_policy(checkpoint)
    config = dataclasses.replace(RunFolder.of_checkpoint(checkpoint).read_config(), resume=False, init_from="")
    ws = Workspace.build(config)
    state = read_state(checkpoint)
    if policy == "flat_ppo":
        flat = ws.new_flat_agent()
        flat.load_state_dict(state["agent"])
        return ws, Policies(flat=flat)
    system = ws.new_system()
    system.load_state_dict(state["system"])
    return ws, Policies(system=system)
