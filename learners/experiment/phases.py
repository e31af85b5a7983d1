"""The curriculum's phases as loops of rollouts and updates, with logging, validation on the
validation split, and checkpoints (part of the composition root with `learners.train`).

  phase 1  specialists: optional CQL pre-training on behaviour data, then one PPO learner per
           specialist on its domain's reward, the meta-controller held at equal allocation and
           full risk appetite;
  phase 2  meta-controller: SAC on the portfolio reward over the frozen specialists (semi-MDP:
           one transition per meta decision, discount gamma ** meta_period per decision);
  phase 3  joint fine-tuning: both levels learn at `phase3_lr_scale` times their learning rates,
           each at its own rhythm (`phase3_specialist_every`, `phase3_meta_every` rollouts);
  flat     the single-agent PPO baseline over all instruments (the `flat_ppo` ablation).

Every rollout restarts the envs at fresh random bars of the training split and reseeds torch
from (seed, phase, rollout, rank), so a run resumed from its last checkpoint repeats exactly
what it would have done. Each phase keeps `best.ckpt` by validation Sharpe (never the test
split) and `last.ckpt`; a NaN or exploding loss stops the run naming the loss and the rollout,
with the last good checkpoint left in place.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric import Fabric
from torch.utils.tensorboard import SummaryWriter

from buffers.replay import ReplayBuffer
from buffers.rollout import RolloutBuffer
from envs.vec_env import VecMarketEnv
from eval.backtest import BacktestResult, run, run_system, scale_costs
from hierarchy.agents import FlatAgent, MetaAgent, SpecialistPolicy
from hierarchy.networks import FlatPolicy
from hierarchy.offline import collect_behaviour_transitions
from hierarchy.pretrain import distill_value, pretrain_specialist, specialist_dataset
from hierarchy.rollouts import collect_flat_rollout, collect_rollout, flat_weights
from hierarchy.system import HierarchicalSystem
from learners.checkpoints import PhaseCheckpoints
from learners.fabric import adam, broadcast_parameters
from learners.ppo import PPOConfig, ppo_update
from learners.sac import SACLearner
from learners.workspace import Workspace

PHASE_INDEX = {"init": 0, "phase1": 1, "phase2": 2, "phase3": 3, "flat_ppo": 4}


class TrainingStopped(RuntimeError):
    """A loss became NaN or exploded; the message names it and the last good checkpoint."""


@dataclass
class RunContext:
    """What every phase shares: the workspace, Fabric, the run folder and whether to resume."""

    ws: Workspace
    fabric: Fabric
    run_dir: Path
    resume: bool

    @property
    def config(self):
        return self.ws.config

    @property
    def num_envs(self) -> int:
        return self.config.budget.num_envs

    def iterations(self, env_steps: int) -> int:
        """Rollouts that spend `env_steps` env steps over all processes (at least one)."""
        per_rollout = self.num_envs * self.config.curriculum.rollout_bars * self.fabric.world_size
        return max(1, env_steps // per_rollout)

    def seed(self, phase: str, iteration: int) -> int:
        """A seed of its own for every (run seed, phase, rollout, process)."""
        entropy = [self.config.seed, PHASE_INDEX[phase], iteration + 1, self.fabric.global_rank]
        return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def check_losses(scalars: dict[str, float], max_abs_loss: float) -> None:
    """FloatingPointError naming the first loss that is NaN or beyond `max_abs_loss`."""
    for name, value in scalars.items():
        if "losses/" in name and not abs(value) <= max_abs_loss:
            raise FloatingPointError(f"{name} is {value} (limit curriculum.max_abs_loss={max_abs_loss})")


class PhaseLoop:
    """Rollout-and-update iterations of one phase with logging, validation and checkpoints.

    `objects` (modules, optimizers, learners, replay buffers) are what its checkpoints hold;
    `validate()` returns the validation Sharpe of the current policy."""

    def __init__(self, ctx: RunContext, phase: str, objects: dict[str, Any], validate: Callable[[], float]) -> None:
        self.ctx, self.phase, self.objects, self.validate = ctx, phase, objects, validate
        self.checkpoints = PhaseCheckpoints(ctx.run_dir, phase)
        self.best_sharpe = -np.inf
        self.writer = SummaryWriter(str(ctx.run_dir / phase)) if ctx.fabric.global_rank == 0 else None

    def _save(self, which: str, iteration: int, env_steps: int) -> None:
        self.checkpoints.save(self.ctx.fabric, which, {**self.objects, "iteration": iteration,
                                                       "env_steps": env_steps, "best_sharpe": self.best_sharpe})

    def _log(self, scalars: dict[str, float], env_steps: int) -> None:
        if self.writer is not None:
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, env_steps)

    def _validation(self, iteration: int, env_steps: int) -> None:
        sharpe = float(self.validate())
        self._log({"validation/sharpe": sharpe}, env_steps)
        if self.ctx.fabric.global_rank == 0:
            with (self.ctx.run_dir / self.phase / "validation.jsonl").open("a") as log:
                log.write(json.dumps({"rollout": iteration, "env_steps": env_steps, "sharpe": sharpe}) + "\n")
        if sharpe > self.best_sharpe or not self.checkpoints.exists("best"):
            self.best_sharpe = max(sharpe, self.best_sharpe)
            self._save("best", iteration, env_steps)

    def run(self, iterations: int, steps_per_iteration: int, step: Callable[[int, int], dict[str, float]]) -> None:
        """`step(iteration, seed)` does one rollout and its updates and returns the scalars to log."""
        fabric, curriculum = self.ctx.fabric, self.ctx.config.curriculum
        first = 0
        if self.ctx.resume and self.checkpoints.exists("last"):
            state = self.checkpoints.load("last", self.objects, fabric.device)
            first, self.best_sharpe = int(state["iteration"]) + 1, float(state["best_sharpe"])
            fabric.print(f"{self.phase}: resuming after rollout {first - 1} of {iterations}")
        else:
            self._validation(-1, 0)           # the starting point competes for the best checkpoint
        start = time.perf_counter()
        for iteration in range(first, iterations):
            seed = self.ctx.seed(self.phase, iteration)
            torch.manual_seed(seed)
            env_steps = (iteration + 1) * steps_per_iteration
            try:
                scalars = step(iteration, seed)
                check_losses(scalars, curriculum.max_abs_loss)
            except FloatingPointError as error:
                kept = self.checkpoints.path("last") if self.checkpoints.exists("last") else "none yet"
                raise TrainingStopped(f"{self.phase}, rollout {iteration}: {error}. Stopped; the last good "
                                      f"checkpoint is {kept} (resume=true continues from it)") from error
            scalars["charts/SPS"] = (iteration + 1 - first) * steps_per_iteration / (time.perf_counter() - start)
            self._log(scalars, env_steps)
            last = iteration + 1 == iterations
            if (iteration + 1) % curriculum.validate_every == 0 or last:
                self._validation(iteration, env_steps)
            if (iteration + 1) % curriculum.checkpoint_every == 0 or last:
                self._save("last", iteration, env_steps)
        self.checkpoints.mark_done(fabric)
        if self.writer is not None:
            self.writer.close()
        fabric.print(f"{self.phase}: done, best validation Sharpe {self.best_sharpe:.3f}")


# ---------------------------------------------------------------------- validation
def validate_system(ws: Workspace, system: HierarchicalSystem, part: str = "validation",
                    decision_log: Path | None = None, cost_factor: float = 1.0) -> BacktestResult:
    """The deterministic hierarchy walked once through `part` behind the risk overlay."""
    market, features = ws.window(part)
    market = scale_costs(market, cost_factor) if cost_factor != 1.0 else market
    regime_probs = features.pop("regime_probs")
    env_config = dataclasses.replace(ws.config.env, warmup_bars=ws.warmup_bars)
    result = run_system("hierarchy", market, env_config, system, decision_log=decision_log,
                        regime_probs=regime_probs, limits=ws.config.risk, **features)
    system.train()
    return result


def validate_flat(ws: Workspace, agent: FlatAgent, part: str = "validation",
                  cost_factor: float = 1.0) -> BacktestResult:
    """The deterministic flat policy (latent means) walked once through `part`."""
    market, features = ws.window(part)
    market = scale_costs(market, cost_factor) if cost_factor != 1.0 else market
    env_config = dataclasses.replace(ws.config.env, warmup_bars=ws.warmup_bars)
    decide = flat_decide(agent, ws.config.hierarchy.max_leverage)
    return run("flat_ppo", market, env_config, decide, limits=ws.config.risk, **features)


def flat_decide(agent: FlatAgent, max_leverage: float) -> Callable[[VecMarketEnv], np.ndarray]:
    """The flat policy's deterministic decision (its latent means) for a one-env walk."""
    def decide(env: VecMarketEnv) -> np.ndarray:
        with torch.no_grad():
            mean, _ = agent.policy(torch.as_tensor(env.observation, dtype=torch.float32))
        return flat_weights(mean, max_leverage)
    return decide


# ---------------------------------------------------------------------- the phases
def _ppo_config(ctx: RunContext, lr_scale: float = 1.0) -> PPOConfig:
    """The learner group's PPO settings with the curriculum's rollout size (num_envs and
    num_steps come from the budget and curriculum, not the learner group)."""
    ppo = ctx.config.learner.ppo
    return dataclasses.replace(ppo, num_envs=ctx.num_envs, num_steps=ctx.config.curriculum.rollout_bars,
                               learning_rate=ppo.learning_rate * lr_scale)


def _anneal(optimizers: list[torch.optim.Optimizer], config: PPOConfig, iteration: int, iterations: int) -> None:
    if config.anneal_lr:   # linear decay to zero at the phase's last rollout
        for optimizer in optimizers:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / iterations) * config.learning_rate


def _specialist_learners(ctx: RunContext, system: HierarchicalSystem, config: PPOConfig):
    policies = [SpecialistPolicy(system.specialist(d)) for d in range(len(system.domain_names))]
    optimizers = [adam(p.parameters(), lr=config.learning_rate, eps=config.adam_eps) for p in policies]
    buffers = [RolloutBuffer(config.num_steps, ctx.num_envs) for _ in policies]
    return policies, optimizers, buffers


def _named(system: HierarchicalSystem, optimizers: list[torch.optim.Optimizer]) -> dict[str, Any]:
    """The specialists' optimizers under checkpoint names."""
    return {f"optimizer_{name}": optimizer for name, optimizer in zip(system.domain_names, optimizers)}


def _ppo_step(ctx: RunContext, system: HierarchicalSystem, policies, optimizers, buffers,
              config: PPOConfig, iteration: int) -> dict[str, float]:
    scalars = {}
    for name, policy, optimizer, buffer in zip(system.domain_names, policies, optimizers, buffers):
        stats = ppo_update(policy, optimizer, buffer.flatten(), config, ctx.fabric, iteration)
        scalars.update({f"{name}/{key}": value for key, value in stats.items()})
    scalars["charts/learning_rate"] = optimizers[0].param_groups[0]["lr"]
    return scalars


def pretrain_cql(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Phase 1's CQL pre-training of every specialist (skipped when a resumed run has done it)."""
    checkpoints = PhaseCheckpoints(ctx.run_dir, "phase1")
    marker = checkpoints.folder / "pretrained.ckpt"
    if ctx.resume and marker.exists():
        system.load_state_dict(torch.load(marker, weights_only=True)["system"])
        ctx.fabric.print("phase1: CQL pre-training already done, loaded")
        return
    cfg, fabric = ctx.config, ctx.fabric
    seed = ctx.seed("phase1", -1)
    torch.manual_seed(seed)
    env = ctx.ws.env("train", ctx.num_envs, seed)
    steps = max(1, cfg.budget.offline_steps // ctx.num_envs)
    data = collect_behaviour_transitions(env, system, steps, np.random.default_rng(seed))
    cql = dataclasses.replace(cfg.learner.cql, num_updates=cfg.budget.cql_steps)
    writer = SummaryWriter(str(ctx.run_dir / "phase1")) if fabric.global_rank == 0 else None
    for d, name in enumerate(system.domain_names):
        dataset = specialist_dataset(data[name], len(system.domain_names), cfg.curriculum.reward_scale)
        if fabric.global_rank == 0:
            (ctx.run_dir / "phase1" / "offline").mkdir(parents=True, exist_ok=True)
            dataset.save(ctx.run_dir / "phase1" / "offline" / f"{name}.npz")
        agent, stats = pretrain_specialist(system.specialist(d), dataset, cql, fabric, cfg.curriculum.critic_hidden)
        stats["losses/value_distillation"] = distill_value(agent, dataset, fabric, cfg.curriculum.distill_steps)
        check_losses(stats, cfg.curriculum.max_abs_loss)
        fabric.print(f"phase1: CQL {name}: {len(dataset)} transitions, {cql.num_updates} updates, "
                     f"penalty {stats['losses/cql_penalty']:.3f}, value fit {stats['losses/value_distillation']:.4f}")
        if writer is not None:
            for key, value in stats.items():
                writer.add_scalar(f"cql/{name}/{key}", value, cql.num_updates)
    if writer is not None:
        writer.close()
    checkpoints.save(fabric, "last", {"system": system, "iteration": -1, "env_steps": 0, "best_sharpe": -np.inf})
    if fabric.global_rank == 0:
        checkpoints.path("last").replace(marker)
    fabric.barrier()


def phase1(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Specialists: CQL pre-training (if `curriculum.pretrain=cql`), then PPO per specialist."""
    if ctx.config.curriculum.pretrain == "cql":
        pretrain_cql(ctx, system)
    system.fixed_meta = True
    config = _ppo_config(ctx)
    env = ctx.ws.env("train", ctx.num_envs, ctx.seed("phase1", 0))
    policies, optimizers, buffers = _specialist_learners(ctx, system, config)
    iterations = ctx.iterations(ctx.config.budget.phase1_steps)
    scale = ctx.config.curriculum.reward_scale

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal(optimizers, config, iteration, iterations)
        stats = collect_rollout(env, system, config.num_steps, seed, scale, buffers,
                                gamma=config.gamma, gae_lambda=config.gae_lambda)
        return {**stats.scalars(system.domain_names, env.market.bars_per_year),
                **_ppo_step(ctx, system, policies, optimizers, buffers, config, iteration)}

    objects = {"system": system, **_named(system, optimizers)}
    loop = PhaseLoop(ctx, "phase1", objects, lambda: validate_system(ctx.ws, system).summary()["sharpe"])
    loop.run(iterations, ctx.num_envs * config.num_steps * ctx.fabric.world_size, step)


def _meta_learner(ctx: RunContext, system: HierarchicalSystem, lr_scale: float = 1.0) -> SACLearner:
    """SAC over the meta-controller; its discount is gamma ** meta_period per decision."""
    sac = ctx.config.learner.sac
    period = ctx.config.hierarchy.meta_period
    config = dataclasses.replace(sac, gamma=sac.gamma ** period, actor_lr=sac.actor_lr * lr_scale,
                                 critic_lr=sac.critic_lr * lr_scale, alpha_lr=sac.alpha_lr * lr_scale)
    return SACLearner(MetaAgent(system.meta), len(system.domain_names), config, ctx.fabric)


def _sac_steps(ctx: RunContext, learner: SACLearner, replay: ReplayBuffer, system: HierarchicalSystem,
               iteration: int) -> dict:
    """The meta's SAC updates after rollout `iteration`: `meta_updates_per_decision` per vector
    decision, once the rollouts have produced `learning_starts` transitions per process
    (counted from the schedule, not the replay, so that every process updates alike)."""
    curriculum, sac = ctx.config.curriculum, learner.config
    decisions = curriculum.rollout_bars // ctx.config.hierarchy.meta_period
    if (iteration + 1) * decisions * ctx.num_envs < sac.learning_starts:
        return {}
    stats: dict[str, float] = {}
    system.train()
    for _ in range(curriculum.meta_updates_per_decision * decisions):
        stats = learner.update(replay.sample(sac.batch_size))
    system.eval()
    return {f"meta/{key}": value for key, value in stats.items()}


def phase2(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Meta-controller: SAC on the portfolio reward, specialists frozen and deterministic."""
    system.fixed_meta = False
    for specialist in system.specialists.values():
        specialist.requires_grad_(False)
    learner = _meta_learner(ctx, system)
    replay = ReplayBuffer(learner.config.buffer_size)
    env = ctx.ws.env("train", ctx.num_envs, ctx.seed("phase2", 0))
    scale = ctx.config.curriculum.reward_scale

    def step(iteration: int, seed: int) -> dict[str, float]:
        system.eval()
        stats = collect_rollout(env, system, ctx.config.curriculum.rollout_bars, seed, scale, meta_replay=replay)
        return {**stats.scalars(system.domain_names, env.market.bars_per_year),
                "meta/transitions": float(len(replay)), **_sac_steps(ctx, learner, replay, system, iteration)}

    loop = PhaseLoop(ctx, "phase2", {"system": system, "meta_learner": learner, "replay": replay},
                     lambda: validate_system(ctx.ws, system).summary()["sharpe"])
    loop.run(ctx.iterations(ctx.config.budget.phase2_steps),
             ctx.num_envs * ctx.config.curriculum.rollout_bars * ctx.fabric.world_size, step)
    for specialist in system.specialists.values():
        specialist.requires_grad_(True)


def phase3(ctx: RunContext, system: HierarchicalSystem, meta_state: dict | None) -> None:
    """Joint fine-tuning: specialists by PPO and the meta by SAC (from phase 2's learner and
    replay when given), at lower learning rates, each every so many rollouts. Without a
    meta-controller (`ablation.meta=false`) only the specialists learn."""
    curriculum = ctx.config.curriculum
    learn_meta = ctx.config.ablation.meta
    system.fixed_meta = not learn_meta
    config = _ppo_config(ctx, curriculum.phase3_lr_scale)
    policies, optimizers, buffers = _specialist_learners(ctx, system, config)
    objects: dict[str, Any] = {"system": system, **_named(system, optimizers)}
    learner = replay = None
    if learn_meta:
        learner = _meta_learner(ctx, system, curriculum.phase3_lr_scale)
        replay = ReplayBuffer(learner.config.buffer_size)
        if meta_state is not None:
            _continue_meta(learner, replay, meta_state, curriculum.phase3_lr_scale)
        objects.update(meta_learner=learner, replay=replay)
    env = ctx.ws.env("train", ctx.num_envs, ctx.seed("phase3", 0))
    iterations = ctx.iterations(ctx.config.budget.phase3_steps)

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal(optimizers, config, iteration, iterations)
        system.eval()
        stats = collect_rollout(env, system, config.num_steps, seed, curriculum.reward_scale, buffers, replay,
                                gamma=config.gamma, gae_lambda=config.gae_lambda)
        scalars = stats.scalars(system.domain_names, env.market.bars_per_year)
        system.train()
        if iteration % curriculum.phase3_specialist_every == 0:
            scalars.update(_ppo_step(ctx, system, policies, optimizers, buffers, config, iteration))
        if learner is not None and iteration % curriculum.phase3_meta_every == 0:
            scalars.update(_sac_steps(ctx, learner, replay, system, iteration))
        return scalars

    loop = PhaseLoop(ctx, "phase3", objects, lambda: validate_system(ctx.ws, system).summary()["sharpe"])
    loop.run(iterations, ctx.num_envs * config.num_steps * ctx.fabric.world_size, step)


def _continue_meta(learner: SACLearner, replay: ReplayBuffer, state: dict, lr_scale: float) -> None:
    """Phase 2's critics, temperature, optimizers and replay carried into phase 3, the learning
    rates then lowered by `lr_scale`."""
    learner.load_state_dict(state["meta_learner"])
    replay.load_state_dict(state["replay"])
    for optimizer in (learner.actor_optimizer, learner.critic_optimizer, learner.alpha_optimizer):
        for group in optimizer.param_groups:
            group["lr"] *= lr_scale


def flat_agent(env, specialist_hidden: int) -> FlatAgent:
    """The flat policy sized from `env`, twice a specialist's width (it sees every instrument)."""
    return FlatAgent(FlatPolicy(env.single_observation_space.shape[0], env.market.n_instruments,
                                2 * specialist_hidden))


def train_flat(ctx: RunContext, phase: str = "flat_ppo") -> FlatAgent:
    """The flat single-agent PPO over all instruments on the portfolio reward (phase 1's budget);
    returns the agent at its best validation checkpoint."""
    cfg = ctx.config
    config = _ppo_config(ctx)
    env = ctx.ws.env("train", ctx.num_envs, ctx.seed("flat_ppo", 0))
    agent = flat_agent(env, cfg.hierarchy.specialist_hidden)
    broadcast_parameters(ctx.fabric, agent)
    optimizer = adam(agent.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    buffer = RolloutBuffer(config.num_steps, ctx.num_envs)
    iterations = ctx.iterations(cfg.budget.phase1_steps)

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal([optimizer], config, iteration, iterations)
        stats = collect_flat_rollout(env, agent, config.num_steps, seed, cfg.curriculum.reward_scale,
                                     cfg.hierarchy.max_leverage, buffer, config.gamma, config.gae_lambda)
        losses = ppo_update(agent, optimizer, buffer.flatten(), config, ctx.fabric, iteration)
        return {**stats.scalars(env.market.domain_names, env.market.bars_per_year), **losses}

    loop = PhaseLoop(ctx, phase, {"agent": agent, "optimizer": optimizer},
                     lambda: validate_flat(ctx.ws, agent).summary()["sharpe"])
    loop.run(iterations, ctx.num_envs * config.num_steps * ctx.fabric.world_size, step)
    PhaseCheckpoints(ctx.run_dir, phase).load("best", {"agent": agent}, ctx.fabric.device)
    return agent
