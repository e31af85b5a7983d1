"""A run's effective settings, resolved once from its config and written to the run folder as
`resolved.yaml`: what every phase and every walk through a split actually runs with.

The learner groups hold each algorithm's own defaults; the run's shape decides the rest:
  - PPO (phase 1, phase 3, the flat policy): `budget.num_envs` envs, rollouts of
    `curriculum.rollout_bars` bars, as many rollouts as the phase's env-step budget buys over
    all processes (at least one; `total_timesteps` is what they spend), phase 3 at
    `curriculum.phase3_lr_scale` times the learning rate;
  - SAC (the meta-controller, phases 2 and 3): one transition per meta decision, so the discount
    per transition is gamma ** meta_period; phase 3 at the lower learning rates too;
  - CQL (phase 1's pre-training): `budget.cql_steps` updates on `budget.offline_steps` env steps
    of behaviour data;
  - envs: every env on a split starts with `warmup_bars` of history (the env's own warm-up or
    the features', whichever is longer: no decision is taken before every feature is defined);
    training episodes last at most a rollout (every rollout restarts the envs anyway, and
    shorter episodes let them start anywhere in the split, its last bars included); walks
    through a split (validation, test, baselines, backtests) use `eval_env`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from envs.config import EnvConfig
from learners.cql import CQLConfig
from learners.ppo import PPOConfig
from learners.run.config import TrainConfig, meta_learns
from learners.sac import SACConfig

TRAINED_PHASES = ("phase1", "phase2", "phase3", "flat_ppo")


@dataclass
class PhaseSettings:
    """What one phase of the curriculum runs with."""

    rollouts: int                    # rollout-and-update iterations
    num_envs: int                    # envs per process
    rollout_bars: int                # bars per env per rollout
    env_steps_per_rollout: int       # over all processes
    ppo: PPOConfig | None = None     # the specialists' (or the flat policy's) PPO
    sac: SACConfig | None = None     # the meta-controller's SAC

    @property
    def env_steps(self) -> int:
        """Env steps the phase spends over all processes (its budget, rounded down to rollouts)."""
        return self.rollouts * self.env_steps_per_rollout


@dataclass
class RunSettings:
    """Every phase's settings and the envs' configs, as the run uses them."""

    warmup_bars: int                 # history every env gets before its first decision
    train_env: EnvConfig
    eval_env: EnvConfig
    offline_bars: int                # behaviour-policy bars per env of phase 1's CQL dataset
    cql: CQLConfig
    phase1: PhaseSettings
    phase2: PhaseSettings
    phase3: PhaseSettings
    flat_ppo: PhaseSettings

    def phase(self, name: str) -> PhaseSettings:
        if name not in TRAINED_PHASES:
            raise KeyError(f"phase '{name}' is not one of {TRAINED_PHASES}")
        return getattr(self, name)

    @classmethod
    def resolve(cls, config: TrainConfig, warmup_bars: int, world_size: int = 1) -> RunSettings:
        """The settings of `config` on a market whose features need `warmup_bars` of warm-up,
        trained on `world_size` processes (see the module docstring)."""
        budget, curriculum, learner = config.budget, config.curriculum, config.learner
        num_envs, bars = budget.num_envs, curriculum.rollout_bars
        per_rollout = num_envs * bars * world_size

        def phase(env_steps: int, lr_scale: float = 1.0, ppo: bool = True, sac: bool = False) -> PhaseSettings:
            rollouts = max(1, env_steps // per_rollout)
            spent = rollouts * per_rollout
            return PhaseSettings(rollouts, num_envs, bars, per_rollout,
                                 ppo=_ppo(learner.ppo, num_envs, bars, spent, lr_scale) if ppo else None,
                                 sac=_sac(learner.sac, config.hierarchy.meta_period, lr_scale) if sac else None)

        length = config.env.episode_length
        scale = curriculum.phase3_lr_scale
        return cls(
            warmup_bars=warmup_bars,
            train_env=dataclasses.replace(config.env, warmup_bars=warmup_bars,
                                          episode_length=min(length, bars) if length > 0 else bars),
            eval_env=dataclasses.replace(config.env, warmup_bars=warmup_bars),
            offline_bars=max(1, budget.offline_steps // num_envs),
            cql=dataclasses.replace(learner.cql, num_updates=budget.cql_steps),
            phase1=phase(budget.phase1_steps),
            phase2=phase(budget.phase2_steps, ppo=False, sac=True),
            phase3=phase(budget.phase3_steps, scale, sac=meta_learns(config)),
            flat_ppo=phase(budget.phase1_steps))


def _ppo(ppo: PPOConfig, num_envs: int, bars: int, env_steps: int, lr_scale: float) -> PPOConfig:
    return dataclasses.replace(ppo, num_envs=num_envs, num_steps=bars, total_timesteps=env_steps,
                               learning_rate=ppo.learning_rate * lr_scale)


def _sac(sac: SACConfig, meta_period: int, lr_scale: float) -> SACConfig:
    return dataclasses.replace(sac, gamma=sac.gamma ** meta_period, actor_lr=sac.actor_lr * lr_scale,
                               critic_lr=sac.critic_lr * lr_scale, alpha_lr=sac.alpha_lr * lr_scale)
