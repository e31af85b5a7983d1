"""The curriculum's order: which phases run, which come from earlier runs, and the policies a
run trains (the hierarchy through its phases, or the flat PPO), with their wall times.

A phase needs the one before it. A phase that was not asked for (`phase=3` alone) is a
prerequisite: taken from this run folder or `init_from` when finished there, or run first,
saying so. Each phase starts from the previous phase's best checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from hierarchy.agents import FlatAgent
from hierarchy.system import HierarchicalSystem
from learners.checkpoints import PhaseCheckpoints
from learners.fabric import broadcast_parameters
from learners.phases import RunContext, phase1, phase2, phase3, train_flat
from learners.train_config import phase_list


@dataclass
class TrainedPolicies:
    """What a run trained: the hierarchy (at its last phase's best checkpoint) or the flat
    policy, the flat baseline if asked for, and the wall seconds and env steps of each part."""

    system: HierarchicalSystem | None
    flat: FlatAgent | None
    wall_s: dict[str, float] = field(default_factory=dict)
    env_steps: dict[str, int] = field(default_factory=dict)


def run_curriculum(ctx: RunContext, system: HierarchicalSystem) -> dict[str, float]:
    """Phases 1 .. max(phase) in order; a phase that was not asked for is a prerequisite,
    loaded from this run or `init_from`, or run first. Returns the wall seconds of those run."""
    config, fabric = ctx.config, ctx.fabric
    wall: dict[str, float] = {}
    meta_state = None
    asked = phase_list(config.phase)
    for k in range(1, max(asked) + 1):
        name = f"phase{k}"
        if k == 2 and not config.ablation.meta:
            fabric.print("phase2: skipped (ablation.meta=false: allocations stay equal)")
            continue
        here = PhaseCheckpoints(ctx.run_dir, name)
        earlier = PhaseCheckpoints(config.init_from, name) if config.init_from else None
        source = here if here.done and (ctx.resume or k not in asked) else None
        if source is None and k not in asked and earlier is not None and earlier.done:
            source = earlier
        if source is not None:
            state = source.load("best", {"system": system}, fabric.device)
            meta_state = state if k == 2 else meta_state
            fabric.print(f"{name}: using {source.path('best')}")
            continue
        if k not in asked:
            fabric.print(f"{name}: no finished {name} in {ctx.run_dir}" + (f" or {config.init_from}" if earlier else "")
                         + "; running it first")
        started = time.perf_counter()
        if k == 1:
            phase1(ctx, system)
        elif k == 2:
            phase2(ctx, system)
        else:
            phase3(ctx, system, meta_state)
        wall[name] = time.perf_counter() - started
        state = here.load("best", {"system": system}, fabric.device)
        meta_state = state if k == 2 else meta_state
    return wall


def train_policies(ctx: RunContext) -> TrainedPolicies:
    """Train what the config asks for: the flat policy (`ablation.policy=flat`) or the hierarchy
    through the curriculum, and the flat baseline with `evaluation.flat_ppo`."""
    config, fabric = ctx.config, ctx.fabric
    torch.manual_seed(ctx.seed("init", 0))
    budget = config.budget
    steps = {"phase1": budget.phase1_steps, "phase2": budget.phase2_steps, "phase3": budget.phase3_steps,
             "flat_ppo": budget.phase1_steps}
    trained = TrainedPolicies(None, None)
    started = time.perf_counter()
    if config.ablation.policy == "flat":
        trained.flat = train_flat(ctx, "phase1")
        trained.wall_s["phase1"] = time.perf_counter() - started
        if max(phase_list(config.phase)) > 1:
            fabric.print("phase2, phase3: skipped (the flat policy has one level)")
    else:
        trained.system = ctx.ws.system(ctx.ws.env("train", 1, config.seed))
        broadcast_parameters(fabric, trained.system)
        trained.wall_s.update(run_curriculum(ctx, trained.system))
        if config.evaluation.flat_ppo:
            started = time.perf_counter()
            trained.flat = train_flat(ctx)
            trained.wall_s["flat_ppo"] = time.perf_counter() - started
    trained.env_steps = {part: steps[part] for part in trained.wall_s}
    return trained
