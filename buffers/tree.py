"""Observations of any structure: a tensor, or a dict of named tensors sharing leading dims.

The hierarchy's specialists observe `{"domain_obs": (B, F_d), "instrument_obs": (B, n, F_i), ...}`
while a gymnasium task observes one `(B, F)` tensor; buffers and learners treat both alike
through the few functions here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import Tensor

Obs = Tensor | dict[str, Tensor]


def tree_map(fn: Callable[[Tensor], Tensor], obs: Obs) -> Obs:
    """Apply `fn` to the tensor, or to every tensor of the dict (keys kept in order)."""
    if isinstance(obs, Mapping):
        return {key: fn(value) for key, value in obs.items()}
    return fn(obs)


def tree_map2(fn: Callable[[Tensor, Tensor], Tensor], a: Obs, b: Obs) -> Obs:
    """Apply `fn` leaf by leaf to two observations of the same structure."""
    if isinstance(a, Mapping):
        return {key: fn(value, b[key]) for key, value in a.items()}
    return fn(a, b)


def as_tensor_obs(obs: np.ndarray | Tensor | Mapping, device: torch.device | str = "cpu") -> Obs:
    """Numpy arrays (or a dict of them) to float32 tensors on `device`; other dtypes kept."""
    def convert(x: np.ndarray | Tensor) -> Tensor:
        t = torch.as_tensor(x, device=device)
        return t.float() if t.dtype == torch.float64 else t
    if isinstance(obs, Mapping):
        return {key: convert(value) for key, value in obs.items()}
    return convert(obs)


def leading_size(obs: Obs) -> int:
    """Size of the first dimension (the batch), checked to agree across a dict's tensors."""
    if not isinstance(obs, Mapping):
        return obs.shape[0]
    sizes = {key: value.shape[0] for key, value in obs.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"observation tensors disagree on the batch dimension: {sizes}")
    return next(iter(sizes.values()))


def tree_setitem(dst: Obs, index: int | slice | Tensor, src: Obs) -> None:
    """`dst[index] = src` for the tensor, or for each tensor of the dict (in place)."""
    if isinstance(dst, Mapping):
        missing = set(dst) ^ set(src)
        if missing:
            raise KeyError(f"observation keys differ from the stored ones: {sorted(missing)}")
        for key, value in dst.items():
            value[index] = src[key]
    else:
        dst[index] = src


def tree_cat(items: list[Obs]) -> Obs:
    """Concatenate observations of the same structure along the first dimension."""
    if isinstance(items[0], Mapping):
        return {key: torch.cat([item[key] for item in items]) for key in items[0]}
    return torch.cat(items)
