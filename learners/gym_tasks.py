"""Gymnasium tasks for the learners' own loops (CartPole, Pendulum, ...; the market simulator is the
top-level `envs` package): vector envs, episode statistics, running observation and reward
normalisation (as modules, so checkpoints carry their statistics), the deterministic evaluation
every benchmark number comes from, and `command_line`, the hydra entry point shared by
`python -m learners.ppo` and `python -m learners.sac`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from lightning.fabric import Fabric
from torch import Tensor, nn

from learners.fabric import FabricConfig, make_fabric, save_checkpoint


def make_vector_env(env_id: str, num_envs: int, seed: int, rescale_actions: bool = False,
                    vectorization: str = "sync") -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` with episode statistics (`RecordEpisodeStatistics`).

    vectorization "sync": a SyncVectorEnv stepping the envs one by one in this process; they
    autoreset in SAME_STEP mode, so a finished episode's true final observation is in
    `info["final_obs"]`. "vector_entry_point": the task's own batched implementation (one numpy
    step for all envs, e.g. CartPole's), which autoresets in NEXT_STEP mode. With
    `rescale_actions`, Box actions are taken in [-1, 1].
    """
    if vectorization == "sync":
        wrappers = [lambda env: gym.wrappers.RescaleAction(env, -1.0, 1.0)] if rescale_actions else []
        envs = gym.make_vec(env_id, num_envs, "sync", wrappers=wrappers,
                            vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    elif vectorization == "vector_entry_point":
        envs = gym.make_vec(env_id, num_envs, "vector_entry_point")
        if rescale_actions:
            envs = gym.wrappers.vector.RescaleAction(envs, -1.0, 1.0)
    else:
        raise ValueError(f"vectorization must be 'sync' or 'vector_entry_point', not '{vectorization}'")
    envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
    envs.action_space.seed(seed)
    return envs


def autoresets_next_step(envs: gym.vector.VectorEnv) -> bool:
    """True if `envs` reset a finished env on the step after its last (NEXT_STEP mode)."""
    return envs.metadata.get("autoreset_mode") == gym.vector.AutoresetMode.NEXT_STEP


def final_observations(next_obs: np.ndarray, done: np.ndarray, info: dict, next_step: bool) -> np.ndarray:
    """next_obs with each finished env's row replaced by its final observation: the row of
    `info["final_obs"]` under SAME_STEP autoreset, the returned row itself under NEXT_STEP
    (`next_step`), where the reset only comes with the following step."""
    if next_step or not done.any():
        return next_obs
    real = np.array(next_obs, copy=True)
    real[done] = np.stack(info["final_obs"][done])
    return real


def finished_episodes(info: dict) -> list[tuple[float, int]]:
    """(undiscounted return, length) of the episodes that ended at this step, read from the
    statistics `RecordEpisodeStatistics` puts in `info["episode"]`."""
    if "episode" not in info:
        return []
    finished = info["_episode"]
    return list(zip(info["episode"]["r"][finished].tolist(), info["episode"]["l"][finished].tolist()))


class RunningMeanStd(nn.Module):
    """Running mean and variance of a stream of batches (Chan et al.'s parallel update)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: Tensor) -> None:
        batch = batch.double()
        batch_mean, batch_var, n = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean += delta * n / total
        self.var.copy_((self.var * self.count + batch_var * n + delta.square() * self.count * n / total) / total)
        self.count.copy_(total)


class ObservationNormalizer(RunningMeanStd):
    """Running observation normalisation: (obs - mean) / std, clipped to [-clip, clip]
    (the 37-details PPO's NormalizeObservation; SB3's VecNormalize)."""

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0) -> None:
        super().__init__(shape)
        self.clip = clip

    def forward(self, obs: Tensor, update: bool = False) -> Tensor:
        if update:
            self.update(obs)
        normal = (obs.double() - self.mean) / torch.sqrt(self.var + 1e-8)
        return normal.clamp(-self.clip, self.clip).to(obs.dtype)


class RewardScaler(RunningMeanStd):
    """Reward scaling: rewards divided by the running std of the discounted return (not
    centred), each env's return reset at episode ends (the 37-details PPO's NormalizeReward)."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0) -> None:
        super().__init__(())
        self.gamma, self.clip = gamma, clip
        self.register_buffer("discounted", torch.zeros(num_envs, dtype=torch.float64))

    def forward(self, rewards: Tensor, done: Tensor) -> Tensor:
        self.discounted.mul_(self.gamma).add_(rewards.double())
        self.update(self.discounted)
        self.discounted[done] = 0.0
        return (rewards.double() / torch.sqrt(self.var + 1e-8)).clamp(-self.clip, self.clip).to(rewards.dtype)


def evaluate(env_id: str, act: Callable[[Tensor], Tensor], episodes: int, seed: int,
             rescale_actions: bool = False) -> np.ndarray:
    """Undiscounted returns of `episodes` episodes (seeds seed, seed + 1, ...) under `act`,
    a map from a float32 observation (1, F) to an action (1, ...) in the env's units."""
    env = gym.make(env_id)
    if rescale_actions:
        env = gym.wrappers.RescaleAction(env, -1.0, 1.0)
    returns = np.zeros(episodes)
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        done = False
        while not done:
            with torch.no_grad():
                action = act(torch.as_tensor(obs, dtype=torch.float32)[None])[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[k] += reward
            done = terminated or truncated
    env.close()
    return returns


def run_folder(log_dir: str, run_name: str) -> str:
    """A learner's run folder: its TensorBoard folder `log_dir/run_name`, or
    `runs/learners/run_name` when nothing is logged (`log_dir=""`)."""
    return f"{log_dir or 'runs/learners'}/{run_name}"


def command_line(algo: str, config_class: type, env_id: str,
                 train: Callable[[str, Any, FabricConfig, Fabric], tuple[dict, str]]) -> None:
    """`python -m learners.<algo> env_id=... <algo>.<field>=... fabric.<field>=...`: hydra over the
    structured config (env_id, `config_class` as `<algo>`, FabricConfig as `fabric`), registered in
    hydra's ConfigStore, so a misspelled key fails at start naming it. `train(env_id, config,
    fabric_config, fabric)` returns the checkpoint's state and a summary line; the state is saved
    as `<run folder>/<algo>.ckpt` and the line printed. Hydra's run folder is the run folder
    (`fabric.log_dir/fabric.run_name`), so `.hydra/config.yaml` lies beside the checkpoint; the
    working directory stays put. Hydra is imported here, not when the learners are."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from omegaconf import DictConfig, OmegaConf

    schema = dataclasses.make_dataclass(f"{algo.upper()}CommandLine", [
        ("env_id", str, env_id),
        (algo, config_class, dataclasses.field(default_factory=config_class)),
        ("fabric", FabricConfig, dataclasses.field(default_factory=FabricConfig)),
    ])
    if not OmegaConf.has_resolver("learner_run_folder"):
        OmegaConf.register_new_resolver("learner_run_folder", run_folder)
    store = ConfigStore.instance()
    store.store(name=f"{algo}_schema", node=schema)
    store.store(name=f"{algo}_command_line", node={
        "defaults": [f"{algo}_schema", "_self_"],
        "hydra": {"run": {"dir": "${learner_run_folder:${fabric.log_dir},${fabric.run_name}}"},
                  "job": {"name": algo, "chdir": False}},
    })

    @hydra.main(config_path=None, config_name=f"{algo}_command_line", version_base="1.3")
    def main(cfg: DictConfig) -> None:
        config = OmegaConf.to_object(cfg)
        fabric = make_fabric(config.fabric)
        state, summary = train(config.env_id, getattr(config, algo), config.fabric, fabric)
        save_checkpoint(fabric, f"{run_folder(config.fabric.log_dir, config.fabric.run_name)}/{algo}.ckpt", state)
        fabric.print(summary)

    main()
