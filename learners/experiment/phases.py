"""The curriculum's phases, each a `PhaseLoop` of rollouts and updates with the settings the run
resolved for it (`learners.run.settings`):

  phase 1  specialists: optional CQL pre-training on behaviour data, then one PPO learner per
           specialist on its domain's reward, the meta-controller held at equal allocation and
           full risk appetite;
  phase 2  meta-controller: SAC on the portfolio reward over the frozen specialists (semi-MDP:
           one transition per meta decision, discount gamma ** meta_period per decision);
  phase 3  joint fine-tuning: both levels learn at `phase3_lr_scale` times their learning rates,
           each at its own rhythm (`phase3_specialist_every`, `phase3_meta_every` rollouts);
           under the consensus coordinator, the specialists alone, under the vote's guidance;
  flat     the single-agent PPO baseline over all instruments (the `flat_ppo` ablation).

Every rollout restarts the envs at fresh random bars of the training split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from buffers.replay import ReplayBuffer
from buffers.rollout import RolloutBuffer
from eval.backtest import validation_sharpe
from hierarchy.agents import FlatAgent, MetaAgent, SpecialistActor, SpecialistPolicy
from hierarchy.critic import joint_observation
from hierarchy.offline import collect_behaviour_transitions
from hierarchy.pretrain import distill_value, pretrain_specialist, specialist_dataset
from hierarchy.rollouts import RolloutStats, collect_flat_rollout, collect_rollout
from hierarchy.system import HierarchicalSystem
from learners.experiment.loop import PhaseLog, PhaseLoop, RunContext, check_losses
from learners.fabric import adam, broadcast_parameters
from learners.ppo import PPOConfig, ppo_update, value_update
from learners.run.checkpoints import PhaseCheckpoints
from learners.run.restore import Policies
from learners.run.settings import PhaseSettings
from learners.sac import SACConfig, SACLearner


def _validation_sharpe(ctx: RunContext, system: HierarchicalSystem):
    return lambda: validation_sharpe(ctx.ws, Policies(system=system))


def _anneal(optimizers: list[torch.optim.Optimizer], config: PPOConfig, iteration: int, iterations: int) -> None:
    if config.anneal_lr:   # linear decay to zero at the phase's last rollout
        for optimizer in optimizers:
            optimizer.param_groups[0]["lr"] = (1.0 - iteration / iterations) * config.learning_rate


class SpecialistLearners:
    """One PPO learner per specialist: its policy view, optimizer and rollout buffer; under MAPPO
    (the system's central critic), PPO on the actors alone and the critic's own step
    (`value_update`) on the joint batch, with its own optimizer."""

    def __init__(self, system: HierarchicalSystem, config: PPOConfig) -> None:
        self.system, self.config = system, config
        critic = system.central_critic
        view = SpecialistPolicy if critic is None else SpecialistActor
        self.policies = [view(system.specialist(d)) for d in range(len(system.domain_names))]
        self.optimizers = [adam(p.parameters(), lr=config.learning_rate, eps=config.adam_eps) for p in self.policies]
        self.critic_optimizer = (None if critic is None else
                                 adam(critic.parameters(), lr=config.learning_rate, eps=config.adam_eps))
        self.buffers = [RolloutBuffer(config.num_steps, config.num_envs) for _ in self.policies]

    @property
    def all_optimizers(self) -> list[torch.optim.Optimizer]:
        """The actors' optimizers and the central critic's (annealed alike)."""
        return self.optimizers + ([] if self.critic_optimizer is None else [self.critic_optimizer])

    def checkpointed(self) -> dict[str, Any]:
        """The optimizers under checkpoint names (the policies and the critic are the system's)."""
        names = {f"optimizer_{name}": optimizer for name, optimizer in zip(self.system.domain_names, self.optimizers)}
        return names if self.critic_optimizer is None else {**names, "optimizer_critic": self.critic_optimizer}

    def update(self, ctx: RunContext, iteration: int) -> dict[str, float]:
        scalars = {}
        batches = [buffer.flatten() for buffer in self.buffers]
        for name, policy, optimizer, batch in zip(self.system.domain_names, self.policies, self.optimizers, batches):
            stats = ppo_update(policy, optimizer, batch, self.config, ctx.fabric, iteration)
            scalars.update({f"{name}/{key}": value for key, value in stats.items()})
        critic = self.system.central_critic
        if critic is not None:   # MAPPO: one critic of the joint observation, a value per domain
            joint = joint_observation([batch.obs["domain_obs"] for batch in batches],
                                      torch.stack([batch.obs["allocation"] for batch in batches], dim=1),
                                      batches[0].obs["appetite"])
            stats = value_update(critic, critic.value_norm, self.critic_optimizer, joint,
                                 torch.stack([batch.values for batch in batches], dim=1),
                                 torch.stack([batch.returns for batch in batches], dim=1), self.config, ctx.fabric,
                                 iteration)
            scalars.update({f"critic/{key}": value for key, value in stats.items()})
        scalars["charts/learning_rate"] = self.optimizers[0].param_groups[0]["lr"]
        return scalars


def pretrain_cql(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Phase 1's CQL pre-training of every specialist (skipped when a resumed run has done it)."""
    checkpoints = ctx.folder.checkpoints("phase1")
    if ctx.resume and checkpoints.exists("pretrained"):
        checkpoints.load("pretrained", {"system": system})
        ctx.fabric.print("phase1: CQL pre-training already done, loaded")
        return
    settings, curriculum, fabric = ctx.settings, ctx.config.curriculum, ctx.fabric
    seed = ctx.seed("phase1", -1)
    torch.manual_seed(seed)
    env = ctx.ws.env("train", settings.phase1.num_envs, seed)
    data = collect_behaviour_transitions(env, system, settings.offline_bars, np.random.default_rng(seed))
    log = PhaseLog(ctx, "phase1")
    for d, name in enumerate(system.domain_names):
        dataset = specialist_dataset(data[name], len(system.domain_names), curriculum.reward_scale)
        if curriculum.offline_datasets and fabric.global_rank == 0:
            dataset.save(ctx.folder.offline_dataset(name))
        agent, stats = pretrain_specialist(system.specialist(d), dataset, settings.cql, fabric,
                                           curriculum.critic_hidden)
        stats["losses/value_distillation"] = distill_value(agent, dataset, fabric, curriculum.distill_steps)
        check_losses(stats, curriculum.max_abs_loss)
        fabric.print(f"phase1: CQL {name}: {len(dataset)} transitions, {settings.cql.num_updates} updates, "
                     f"penalty {stats['losses/cql_penalty']:.3f}, value fit {stats['losses/value_distillation']:.4f}")
        log.scalars({f"cql/{name}/{key}": value for key, value in stats.items()}, settings.cql.num_updates)
    log.close()
    checkpoints.save(fabric, "pretrained", {"system": system, "iteration": -1, "env_steps": 0, "best_sharpe": -np.inf})


def phase1(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Specialists: CQL pre-training (if `curriculum.pretrain=cql`), then PPO per specialist."""
    if ctx.config.curriculum.pretrain == "cql":
        pretrain_cql(ctx, system)
    system.fixed_meta = True
    settings = ctx.settings.phase1
    config = settings.ppo
    env = ctx.ws.env("train", settings.num_envs, ctx.seed("phase1", 0))
    learners = SpecialistLearners(system, config)
    scale = ctx.config.curriculum.reward_scale

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal(learners.all_optimizers, config, iteration, settings.rollouts)
        stats = collect_rollout(env, system, config.num_steps, seed, scale, learners.buffers,
                                gamma=config.gamma, gae_lambda=config.gae_lambda)
        return {**stats.scalars(system.domain_names, env.market.bars_per_year), **learners.update(ctx, iteration)}

    loop = PhaseLoop(ctx, "phase1", {"system": system, **learners.checkpointed()}, _validation_sharpe(ctx, system))
    loop.run(settings.rollouts, settings.env_steps_per_rollout, step)


def realised_value(stats: RolloutStats, reward_scale: float, meta_period: int, gamma: float) -> float:
    """The value a meta critic should report at the rollout's mean reward rate: the mean option
    reward (meta_period bars of scaled reward) summed over the discounted future, r / (1 - gamma).
    Logged beside the critic's Q-values (`meta/losses/qf1_values`): a critic far from it has not
    learnt the reward's scale yet, or the discount makes the value a constant the allocation
    barely moves."""
    return float(np.mean(stats.rewards) * reward_scale * meta_period / (1.0 - gamma))


class MetaLearner:
    """SAC over the meta-controller with its replay of semi-MDP transitions."""

    def __init__(self, ctx: RunContext, system: HierarchicalSystem, config: SACConfig) -> None:
        self.ctx, self.system = ctx, system
        self.sac = SACLearner(MetaAgent(system.meta), len(system.domain_names), config, ctx.fabric)
        self.replay = ReplayBuffer(config.buffer_size)

    def continue_from(self, state: dict, checkpoints: PhaseCheckpoints, lr_scale: float) -> None:
        """Phase 2's critics, temperature, optimizers and replay (from its checkpoint `state` and
        the replay rows beside it) carried into phase 3, the learning rates then lowered by
        `lr_scale`."""
        self.sac.load_state_dict(state["meta_learner"])
        checkpoints.replay.restore(self.replay, int(state["iteration"]), int(state["replay_added"]))
        for optimizer in (self.sac.actor_optimizer, self.sac.critic_optimizer, self.sac.alpha_optimizer):
            for group in optimizer.param_groups:
                group["lr"] *= lr_scale

    def update(self, iteration: int, settings: PhaseSettings) -> dict[str, float]:
        """The SAC updates after rollout `iteration`: `meta_updates_per_decision` per vector
        decision, once the rollouts have produced `learning_starts` transitions per process
        (counted from the schedule, not the replay, so that every process updates alike)."""
        curriculum, sac = self.ctx.config.curriculum, self.sac.config
        decisions = settings.rollout_bars // self.ctx.config.hierarchy.meta_period
        if (iteration + 1) * decisions * settings.num_envs < sac.learning_starts:
            return {}
        stats: dict[str, float] = {}
        self.system.train()
        for _ in range(curriculum.meta_updates_per_decision * decisions):
            stats = self.sac.update(self.replay.sample(sac.batch_size))
        self.system.eval()
        return {f"meta/{key}": value for key, value in stats.items()}


def phase2(ctx: RunContext, system: HierarchicalSystem) -> None:
    """Meta-controller: SAC on the portfolio reward, specialists frozen and deterministic."""
    system.fixed_meta = False
    for specialist in system.specialists.values():
        specialist.requires_grad_(False)
    settings = ctx.settings.phase2
    meta = MetaLearner(ctx, system, settings.sac)
    env = ctx.ws.env("train", settings.num_envs, ctx.seed("phase2", 0))
    scale = ctx.config.curriculum.reward_scale

    def step(iteration: int, seed: int) -> dict[str, float]:
        system.eval()
        stats = collect_rollout(env, system, settings.rollout_bars, seed, scale, meta_replay=meta.replay)
        return {**stats.scalars(system.domain_names, env.market.bars_per_year),
                "meta/transitions": float(len(meta.replay)), **meta.update(iteration, settings),
                "meta/realised_value": realised_value(stats, scale, ctx.config.hierarchy.meta_period,
                                                      settings.sac.gamma)}

    loop = PhaseLoop(ctx, "phase2", {"system": system, "meta_learner": meta.sac}, _validation_sharpe(ctx, system),
                     meta.replay)
    loop.run(settings.rollouts, settings.env_steps_per_rollout, step)
    for specialist in system.specialists.values():
        specialist.requires_grad_(True)


def phase3(ctx: RunContext, system: HierarchicalSystem, meta_state: tuple[dict, PhaseCheckpoints] | None) -> None:
    """Joint fine-tuning: specialists by PPO and the meta by SAC (from phase 2's learner and
    replay when given: its best checkpoint and where it lies), at lower learning rates, each
    every so many rollouts. Without a meta-controller to learn (`ablation.meta=false`: equal
    allocation; the consensus coordinator: its vote) only the specialists learn."""
    curriculum, settings = ctx.config.curriculum, ctx.settings.phase3
    system.fixed_meta = not ctx.config.ablation.meta
    config = settings.ppo
    learners = SpecialistLearners(system, config)
    objects: dict[str, Any] = {"system": system, **learners.checkpointed()}
    meta = None
    if settings.sac is not None:
        meta = MetaLearner(ctx, system, settings.sac)
        if meta_state is not None:
            meta.continue_from(*meta_state, curriculum.phase3_lr_scale)
        objects["meta_learner"] = meta.sac
    env = ctx.ws.env("train", settings.num_envs, ctx.seed("phase3", 0))

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal(learners.all_optimizers, config, iteration, settings.rollouts)
        system.eval()
        stats = collect_rollout(env, system, config.num_steps, seed, curriculum.reward_scale, learners.buffers,
                                meta.replay if meta is not None else None, gamma=config.gamma,
                                gae_lambda=config.gae_lambda)
        scalars = stats.scalars(system.domain_names, env.market.bars_per_year)
        system.train()
        if iteration % curriculum.phase3_specialist_every == 0:
            scalars.update(learners.update(ctx, iteration))
        if meta is not None and iteration % curriculum.phase3_meta_every == 0:
            scalars.update(meta.update(iteration, settings))
            scalars["meta/realised_value"] = realised_value(stats, curriculum.reward_scale,
                                                            ctx.config.hierarchy.meta_period, settings.sac.gamma)
        return scalars

    loop = PhaseLoop(ctx, "phase3", objects, _validation_sharpe(ctx, system), meta.replay if meta else None)
    loop.run(settings.rollouts, settings.env_steps_per_rollout, step)


def train_flat(ctx: RunContext, phase: str = "flat_ppo") -> FlatAgent:
    """The flat single-agent PPO over all instruments on the portfolio reward (phase 1's budget)
    in phase folder `phase`; returns the agent at its best validation checkpoint."""
    settings, curriculum, hierarchy = ctx.settings.flat_ppo, ctx.config.curriculum, ctx.config.hierarchy
    config = settings.ppo
    env = ctx.ws.env("train", settings.num_envs, ctx.seed("flat_ppo", 0))
    agent = ctx.ws.new_flat_agent()
    broadcast_parameters(ctx.fabric, agent)
    optimizer = adam(agent.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    buffer = RolloutBuffer(config.num_steps, config.num_envs)

    def step(iteration: int, seed: int) -> dict[str, float]:
        _anneal([optimizer], config, iteration, settings.rollouts)
        stats = collect_flat_rollout(env, agent, config.num_steps, seed, curriculum.reward_scale,
                                     hierarchy.max_leverage, buffer, config.gamma, config.gae_lambda)
        losses = ppo_update(agent, optimizer, buffer.flatten(), config, ctx.fabric, iteration)
        return {**stats.scalars(env.market.domain_names, env.market.bars_per_year), **losses}

    loop = PhaseLoop(ctx, phase, {"agent": agent, "optimizer": optimizer},
                     lambda: validation_sharpe(ctx.ws, Policies(flat=agent)))
    loop.run(settings.rollouts, settings.env_steps_per_rollout, step)
    ctx.folder.checkpoints(phase).load("best", {"agent": agent}, ctx.fabric.device)
    return agent
