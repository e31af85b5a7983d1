"""The exported hierarchy: its networks as TorchScript, deciding through the same code as
`HierarchicalSystem` (its rhythm, inputs, weight composition and messages), deterministically.

`ScriptedHierarchy` is a `HierarchicalSystem` whose meta-controller and specialists are
TorchScript modules loaded from an artifact: `decide` is the class's own, so the service's
decisions are computed by the lines the backtest runs. The scripted networks are run without
graph optimisation (`torch.jit.optimized_execution(False)`): the same operators as eager mode,
hence the same numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from envs.vec_env import VecMarketEnv
from hierarchy.networks import module_key
from hierarchy.system import HierarchicalSystem, HierarchyConfig


@contextmanager
def torchscript() -> Iterator[None]:
    """TorchScript calls without torch's notice that TorchScript is deprecated (for
    `torch.export`): the artifact's format is TorchScript, whose loading needs no Python class."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\..*` is deprecated", category=DeprecationWarning)
        yield


class MetaMode(nn.Module):
    """The meta-controller's deterministic action (allocation (B, D), appetite (B,)): what
    `MetaController.act(obs, deterministic=True)` returns, as one traceable forward."""

    def __init__(self, meta: nn.Module) -> None:
        super().__init__()
        self.meta = meta

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.meta.policy(obs).mode()


class SpecialistMean(nn.Module):
    """A specialist's latent means (B, n): the deterministic part of its distribution."""

    def __init__(self, specialist: nn.Module) -> None:
        super().__init__()
        self.specialist = specialist

    def forward(self, domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor, appetite: Tensor) -> Tensor:
        return self.specialist(domain_obs, instrument_obs, allocation, appetite)[0]


class _Latent(NamedTuple):
    mean: Tensor


class _ScriptedMeta(nn.Module):
    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        if not deterministic:
            raise ValueError("an exported meta-controller acts deterministically only")
        with torch.jit.optimized_execution(False):
            allocation, appetite = self.scripted(obs)
        return allocation, appetite, torch.zeros_like(appetite)


class _ScriptedSpecialist(nn.Module):
    reads_window = False    # the export refuses env.window: only single-bar specialists are scripted
    state_size = 0

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def policy_step(self, domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor,
                    appetite: Tensor) -> tuple[_Latent, None]:
        with torch.jit.optimized_execution(False):
            return _Latent(self.scripted(domain_obs, instrument_obs, allocation, appetite)), None


class ScriptedHierarchy(HierarchicalSystem):
    """A `HierarchicalSystem` for one env (the paper book) whose networks are scripted (see
    module docstring): built as the class builds itself from the env's views, then given the
    artifact's networks in place of the fresh ones."""

    def __init__(self, env: VecMarketEnv, config: HierarchyConfig, meta: torch.jit.ScriptModule,
                 specialists: dict[str, torch.jit.ScriptModule], fixed_meta: bool) -> None:
        super().__init__(env, config)
        self.meta = _ScriptedMeta(meta)
        self.specialists = nn.ModuleDict({module_key(d): _ScriptedSpecialist(specialists[d])
                                          for d in self.domain_names})
        self.fixed_meta = fixed_meta
        self.eval()

    def state_dict_arrays(self) -> dict[str, np.ndarray]:
        """The decision rhythm (meta clock, allocation and appetite in force) as arrays."""
        return {"clock": self.clock, "allocation": self.allocation, "appetite": self.appetite}

    def load_state_dict_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.clock, self.allocation, self.appetite = (arrays[k].copy() for k in ("clock", "allocation", "appetite"))
