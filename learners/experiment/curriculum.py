"""The curriculum's order: which phases run, which come from earlier runs, and the policies a
run trains (the hierarchy through its phases, or the flat PPO), with their wall times.

A phase needs the one before it. A phase that was not asked for (`phase=3` alone) is a
prerequisite: taken from this run folder or `init_from` when finished there, or run first,
saying so. Each phase starts from the previous phase's best checkpoint.
"""

from __future__ import annotations

import time

import torch

from hierarchy.system import HierarchicalSystem
from learners.experiment.loop import RunContext
from learners.experiment.phases import phase1, phase2, phase3, train_flat
from learners.fabric import broadcast_parameters
from learners.run.config import meta_learns, phase_list
from learners.run.folder import RunFolder, TrainingRecord
from learners.run.restore import Policies


def run_curriculum(ctx: RunContext, system: HierarchicalSystem) -> dict[str, float]:
    """Phases 1 .. max(phase) in order; a phase that was not asked for is a prerequisite,
    loaded from this run or `init_from`, or run first. Returns the wall seconds of those run."""
    config, fabric = ctx.config, ctx.fabric
    wall: dict[str, float] = {}
    meta_state = None
    asked = phase_list(config.phase)
    for k in range(1, max(asked) + 1):
        name = f"phase{k}"
        if k == 2 and not meta_learns(config):
            why = ("ablation.meta=false: allocations stay equal" if not config.ablation.meta
                   else "hierarchy.coordinator=consensus: the vote learns nothing")
            fabric.print(f"phase2: skipped ({why})")
            continue
        here = ctx.folder.checkpoints(name)
        earlier = RunFolder(config.init_from).checkpoints(name) if config.init_from else None
        source = here if here.done and (ctx.resume or k not in asked) else None
        if source is None and k not in asked and earlier is not None and earlier.done:
            source = earlier
        if source is not None:
            state = source.load("best", {"system": system}, fabric.device)
            system.fixed_meta = k == 1 or not config.ablation.meta    # as the phase left it
            meta_state = (state, source) if k == 2 else meta_state
            fabric.print(f"{name}: using {source.path('best')}")
            continue
        if k not in asked:
            also = f" or {config.init_from}" if earlier else ""
            fabric.print(f"{name}: no finished {name} in {ctx.folder.path}{also}; running it first")
        started = time.perf_counter()
        torch.manual_seed(ctx.seed(name, -1))    # its fresh networks drawn alike, whatever ran before (resume)
        if k == 1:
            phase1(ctx, system)
        elif k == 2:
            phase2(ctx, system)
        else:
            phase3(ctx, system, meta_state)
        wall[name] = time.perf_counter() - started
        state = here.load("best", {"system": system}, fabric.device)
        meta_state = (state, here) if k == 2 else meta_state
    return wall


def train_policies(ctx: RunContext) -> tuple[Policies, TrainingRecord]:
    """Train what the config asks for: the flat policy (`ablation.policy=flat`) or the hierarchy
    through the curriculum, and the flat baseline with `evaluation.flat_ppo`; returns the
    policies (each at its best validation checkpoint) and what training them spent."""
    config, fabric, settings = ctx.config, ctx.fabric, ctx.settings
    torch.manual_seed(ctx.seed("init", 0))
    policies, wall = Policies(), {}
    started = time.perf_counter()
    if config.ablation.policy == "flat":
        policies.flat = train_flat(ctx, "phase1")
        wall["phase1"] = time.perf_counter() - started
        if max(phase_list(config.phase)) > 1:
            fabric.print("phase2, phase3: skipped (the flat policy has one level)")
    else:
        policies.system = ctx.ws.new_system()
        broadcast_parameters(fabric, policies.system)
        wall.update(run_curriculum(ctx, policies.system))
        if config.evaluation.flat_ppo:
            started = time.perf_counter()
            torch.manual_seed(ctx.seed("flat_ppo", -1))   # its network drawn alike, whatever ran before (resume)
            policies.flat = train_flat(ctx)
            wall["flat_ppo"] = time.perf_counter() - started
    env_steps = {part: settings.phase(part).env_steps for part in wall}
    return policies, TrainingRecord(wall, env_steps, fabric.world_size)
