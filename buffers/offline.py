"""Offline datasets for CQL: a container of transitions with normalisation statistics, saved as
npz or Parquet, and a collector that records the transitions of any policy in a vector env.

Leaves are named `obs` (or `obs.<key>` for dict observations), `actions`, `rewards`, `next_obs`
(`next_obs.<key>`), `terminated`; a Parquet column holds a leaf flattened to fixed-size lists,
and its shape is kept in the file's metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from buffers.replay import Transitions
from buffers.tree import Obs, as_tensor_obs, leading_size, tree_cat, tree_map, tree_map2
from storage.atomic import atomic_path


def _flatten(transitions: Transitions) -> dict[str, np.ndarray]:
    leaves = {}
    for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
        value = getattr(transitions, name)
        if isinstance(value, dict):
            leaves.update({f"{name}.{key}": v.cpu().numpy() for key, v in value.items()})
        else:
            leaves[name] = value.cpu().numpy()
    return leaves


def _unflatten(leaves: dict[str, np.ndarray]) -> Transitions:
    def gather(name: str) -> Obs:
        if name in leaves:
            return torch.from_numpy(leaves[name])
        keyed = {k.split(".", 1)[1]: torch.from_numpy(v) for k, v in leaves.items() if k.startswith(name + ".")}
        if not keyed:
            raise KeyError(f"offline dataset has no leaf '{name}'; it has {sorted(leaves)}")
        return keyed
    return Transitions(gather("obs"), gather("actions"), gather("rewards"), gather("next_obs"),
                       gather("terminated"))


@dataclass
class OfflineDataset:
    """M transitions on tensors, with the returns of the behaviour's finished episodes."""

    transitions: Transitions
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))   # (K,)

    def __len__(self) -> int:
        return leading_size(self.transitions.obs)

    def normalization(self, eps: float = 1e-3) -> tuple[Obs, Obs]:
        """(mean, std) of the observations over the dataset, per feature (std floored at eps)."""
        obs = self.transitions.obs
        return (tree_map(lambda x: x.float().mean(0), obs),
                tree_map(lambda x: x.float().std(0).clamp_min(eps), obs))

    def normalized(self, mean: Obs, std: Obs) -> OfflineDataset:
        """A copy with obs and next_obs standardised by (mean, std), e.g. from `normalization()`."""
        def standardise(obs: Obs) -> Obs:
            return tree_map2(torch.div, tree_map2(torch.sub, obs, mean), std)
        t = self.transitions
        return OfflineDataset(Transitions(standardise(t.obs), t.actions, t.rewards, standardise(t.next_obs),
                                          t.terminated), self.episode_returns)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Transitions:
        """`batch_size` transitions drawn uniformly with replacement."""
        device = self.transitions.actions.device
        return self.transitions.index(torch.randint(len(self), (batch_size,), device=device, generator=generator))

    def to(self, device: torch.device | str) -> OfflineDataset:
        """The dataset on `device` (sampling then happens there)."""
        return OfflineDataset(self.transitions.map(lambda x: x.to(device)), self.episode_returns)

    def save(self, path: str | Path) -> None:
        """Write to `path` (.npz or .parquet), atomically (temporary file, then rename)."""
        path = Path(path)
        if path.suffix not in (".npz", ".parquet"):
            raise ValueError(f"{path}: offline datasets are saved as .npz or .parquet, not '{path.suffix}'")
        leaves = _flatten(self.transitions)
        with atomic_path(path) as tmp:
            if path.suffix == ".npz":
                with open(tmp, "wb") as f:
                    np.savez(f, episode_returns=self.episode_returns, **leaves)
            else:
                columns = {name: pa.FixedSizeListArray.from_arrays(v.reshape(-1), int(np.prod(v.shape[1:])))
                           if v.ndim > 1 else pa.array(v) for name, v in leaves.items()}
                meta = {"shapes": {name: list(v.shape[1:]) for name, v in leaves.items()},
                        "episode_returns": self.episode_returns.tolist()}
                table = pa.table(columns).replace_schema_metadata({"offline_dataset": json.dumps(meta)})
                pq.write_table(table, tmp)

    @classmethod
    def load(cls, path: str | Path) -> OfflineDataset:
        """Read a dataset written by `save`."""
        path = Path(path)
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                leaves = {k: data[k] for k in data.files}
            returns = leaves.pop("episode_returns")
        elif path.suffix == ".parquet":
            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(b"offline_dataset")
            if raw is None:
                raise ValueError(f"{path}: not an offline dataset (no 'offline_dataset' metadata)")
            meta = json.loads(raw)
            leaves = {}
            for name in table.column_names:
                column = table.column(name).combine_chunks()
                shape = meta["shapes"][name]
                values = column.flatten().to_numpy() if shape else column.to_numpy()
                leaves[name] = np.array(values).reshape(len(table), *shape)   # a writable copy
            returns = np.asarray(meta["episode_returns"], dtype=np.float64)
        else:
            raise ValueError(f"{path}: offline datasets are read from .npz or .parquet, not '{path.suffix}'")
        return cls(_unflatten(leaves), returns)


def collect(envs: gym.vector.VectorEnv, policy: Callable[[Obs], Tensor], num_steps: int,
            seed: int) -> OfflineDataset:
    """Record `num_steps` steps of every env of a gymnasium vector env under `policy`.

    Observations are arrays (gymnasium Box spaces). `envs` must autoreset in SAME_STEP mode, so
    that a finished episode's true final observation is in `info["final_obs"]`: it becomes
    next_obs of that transition, and a truncated (not terminated) transition keeps
    terminated = 0, so learners bootstrap through it.
    policy: float32 observations (E, ...) -> actions (E, A), in the env's action units.
    """
    mode = envs.metadata.get("autoreset_mode")
    if mode != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError(f"collect needs a vector env that autoresets in SAME_STEP mode, not {mode}")
    obs_np, _ = envs.reset(seed=seed)
    batches, returns = [], []
    running = np.zeros(envs.num_envs)
    for _ in range(num_steps):
        obs = as_tensor_obs(obs_np)
        with torch.no_grad():
            action = policy(obs)
        next_np, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
        real_next = np.array(next_np, copy=True)
        done = terminated | truncated
        for e in np.flatnonzero(done):
            real_next[e] = info["final_obs"][e]          # the observation before the autoreset
        batches.append(Transitions(obs, action.cpu(), torch.as_tensor(reward, dtype=torch.float32),
                                   as_tensor_obs(real_next), torch.as_tensor(terminated, dtype=torch.float32)))
        running += reward
        returns.extend(running[done].tolist())
        running[done] = 0.0
        obs_np = next_np
    merged = Transitions(*(tree_cat([getattr(b, name) for b in batches])
                           for name in ("obs", "actions", "rewards", "next_obs", "terminated")))
    return OfflineDataset(merged, np.asarray(returns))
