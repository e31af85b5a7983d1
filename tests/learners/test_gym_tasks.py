"""Vector envs in both autoreset modes: final observations and episode statistics; the hydra
command lines of `python -m learners.ppo` and `python -m learners.sac`."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from learners.gym_tasks import autoresets_next_step, final_observations, finished_episodes, make_vector_env

ROOT = Path(__file__).resolve().parents[2]


def _run(envs, steps: int) -> tuple[list, list]:
    """Step `envs` with action 0; (finished episodes, final observations of done steps)."""
    envs.reset(seed=0)
    episodes, finals = [], []
    for _ in range(steps):
        next_obs, _, terminated, truncated, info = envs.step(np.zeros(envs.num_envs, dtype=np.int64))
        done = terminated | truncated
        episodes += finished_episodes(info)
        if done.any():
            finals.append((next_obs.copy(), final_observations(next_obs, done, info, autoresets_next_step(envs))))
    return episodes, finals


def test_next_step_autoreset_counts_no_reset_step_and_keeps_the_final_observation():
    envs = make_vector_env("CartPole-v1", 2, seed=0, vectorization="vector_entry_point")
    assert autoresets_next_step(envs)
    episodes, finals = _run(envs, 40)                  # pushing left, CartPole falls within ~10 steps
    # under NEXT_STEP the returned row is the final observation itself
    assert finals and all(np.array_equal(returned, final) for returned, final in finals)
    # each episode pays 1 per step, so its return equals its length: the reset step adds neither
    assert len(episodes) >= 4 and all(r == length for r, length in episodes)


def test_same_step_autoreset_replaces_finished_rows_by_their_final_observation():
    envs = make_vector_env("CartPole-v1", 2, seed=0)
    assert not autoresets_next_step(envs)
    episodes, finals = _run(envs, 40)
    assert len(episodes) >= 4 and all(r == length for r, length in episodes)
    for returned, final in finals:
        # the returned row already starts the next episode (|x| <= 0.05); the final one has fallen
        assert np.abs(returned).max(axis=1).min() <= 0.05 and np.abs(final[:, 2]).max() > 0.2


@pytest.mark.slow   # two subprocesses, each mostly importing torch and lightning (~5 s)
@pytest.mark.parametrize("algo,overrides,setting,misspelled", [
    ("ppo", ["env_id=CartPole-v1", "ppo.total_timesteps=256", "ppo.num_steps=64", "ppo.num_minibatches=2",
             "ppo.update_epochs=1"], ("num_steps", 64), ("ppo.num_env=8", "Key 'num_env' not in 'PPOConfig'")),
    ("sac", ["env_id=Pendulum-v1", "sac.total_timesteps=200", "sac.learning_starts=100", "sac.batch_size=32",
             "sac.hidden=32"], ("hidden", 32), ("sac.utd_ration=2", "Key 'utd_ration' not in 'SACConfig'")),
])
def test_command_line_takes_hydra_overrides_and_names_a_misspelled_key(tmp_path, algo, overrides, setting,
                                                                        misspelled):
    command = [sys.executable, "-m", f"learners.{algo}", "fabric.torch_threads=1", f"fabric.log_dir={tmp_path}"]
    # a run and a misspelled key, at once
    runs = [subprocess.Popen([*command, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in ([*overrides, "fabric.run_name=run"], [misspelled[0], "fabric.run_name=typo"])]
    (out, err), (_, typo_err) = (run.communicate(timeout=120) for run in runs)
    assert runs[0].returncode == 0, err[-3000:]
    key, value = setting
    assert f"{algo.upper()} {overrides[0].removeprefix('env_id=')}: " in out   # the summary line
    # the checkpoint and hydra's resolved config side by side in the run folder
    assert torch.load(tmp_path / "run" / f"{algo}.ckpt", weights_only=True)["config"][key] == value
    assert OmegaConf.load(tmp_path / "run" / ".hydra" / "config.yaml")[algo][key] == value
    assert runs[1].returncode != 0 and misspelled[1] in typo_err and not (tmp_path / "typo").exists()
