"""A run's effective settings: what each phase and env runs with, resolved from the config once."""

import dataclasses

import pytest

from learners.run.config import TrainConfig
from learners.run.settings import RunSettings


def _config(**budget) -> TrainConfig:
    config = TrainConfig()
    return dataclasses.replace(config, budget=dataclasses.replace(config.budget, **budget))


def test_settings_resolve_every_phase_from_the_budget_and_curriculum():
    config = _config(num_envs=8, phase1_steps=10_000, phase2_steps=100, phase3_steps=4_800, cql_steps=7,
                     offline_steps=100)
    settings = RunSettings.resolve(config, warmup_bars=218, world_size=2)
    per_rollout = 8 * 60 * 2                                            # envs x rollout bars x processes
    assert (settings.phase1.rollouts, settings.phase1.env_steps_per_rollout) == (10_000 // per_rollout, per_rollout)
    assert settings.phase2.rollouts == 1                                # at least one rollout
    assert settings.phase1.ppo.total_timesteps == settings.phase1.env_steps == 10 * per_rollout
    assert (settings.phase1.ppo.num_envs, settings.phase1.ppo.num_steps) == (8, 60)
    assert settings.phase1.ppo.learning_rate == config.learner.ppo.learning_rate
    assert settings.phase3.ppo.learning_rate == pytest.approx(0.3 * config.learner.ppo.learning_rate)
    assert settings.phase2.sac.gamma == pytest.approx(0.99 ** 5) and settings.phase2.sac.actor_lr == 3e-4
    assert settings.phase3.sac.critic_lr == pytest.approx(0.3 * 3e-4)
    assert settings.flat_ppo.rollouts == settings.phase1.rollouts and settings.flat_ppo.sac is None
    assert settings.cql.num_updates == 7 and settings.offline_bars == 12
    assert settings.train_env.warmup_bars == settings.eval_env.warmup_bars == 218
    assert settings.train_env.episode_length == 60 and settings.eval_env.episode_length == config.env.episode_length
    no_meta = dataclasses.replace(config, ablation=dataclasses.replace(config.ablation, meta=False))
    assert RunSettings.resolve(no_meta, 20).phase3.sac is None
    with pytest.raises(KeyError, match="'phase4' is not one of"):
        settings.phase("phase4")
