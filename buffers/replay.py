"""A preallocated circular replay buffer of transitions, on tensors (on the learner's device).

Storage is allocated at the first `add`, following the structure of its observations (a tensor
or a dict of tensors), so the meta-controller's and a gymnasium task's transitions fit alike.
Once full, the oldest transitions are overwritten. `added` counts every transition ever stored,
so the rows stored since any earlier count can be read back (`rows_since`) and written into
another buffer (`put`): checkpoints save each transition once that way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from buffers.tree import Obs, leading_size, tree_map, tree_setitem


@dataclass
class Transitions:
    """A batch of B transitions (s, a, r, s', terminated)."""

    obs: Obs               # (B, ...) or dict of (B, ...)
    actions: Tensor        # (B, A)
    rewards: Tensor        # (B,)
    next_obs: Obs          # (B, ...); the true final observation where an episode was truncated
    terminated: Tensor     # (B,) float, 1 where s' is terminal (no bootstrap)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Transitions:
        """Apply `fn` to every tensor (e.g. indexing rows, moving to a device)."""
        return Transitions(tree_map(fn, self.obs), fn(self.actions), fn(self.rewards),
                           tree_map(fn, self.next_obs), fn(self.terminated))

    def index(self, rows: Tensor) -> Transitions:
        """The transitions at `rows` (gathered with `index_select`, several times faster on CPU
        than advanced indexing)."""
        return self.map(lambda x: x.index_select(0, rows))


class ReplayBuffer:
    """Circular storage of `capacity` transitions; `add` takes a batch of E at once."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu") -> None:
        self.capacity, self.device = capacity, torch.device(device)
        self.position = 0          # the next row to write
        self.size = 0              # rows holding data
        self.added = 0             # transitions ever stored
        self.storage: Transitions | None = None

    def __len__(self) -> int:
        return self.size

    def _allocate(self, batch: Transitions) -> None:
        self.storage = batch.map(lambda x: torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype,
                                                       device=self.device))

    def add(self, obs: Obs, actions: Tensor, rewards: Tensor, next_obs: Obs, terminated: Tensor) -> None:
        """Store E transitions: obs (E, ...), actions (E, A), rewards (E,), next_obs, terminated (E,)."""
        batch = Transitions(obs, actions, rewards.float(), next_obs, terminated.float())
        if self.storage is None:
            self._allocate(batch)
        n = leading_size(obs)
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions to a replay buffer of capacity {self.capacity}")
        rows = (self.position + torch.arange(n, device=self.device)) % self.capacity   # wraps around
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            tree_setitem(getattr(self.storage, name), rows, tree_map(lambda x: x.to(self.device), getattr(batch, name)))
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        self.added += n

    def rows_since(self, added: int) -> tuple[Tensor, Transitions]:
        """The rows (positions) and contents of the transitions stored after the first `added`
        (the last `capacity` of them, if more), oldest first."""
        n = min(self.added - added, self.size)
        rows = (self.position - n + torch.arange(n, device=self.device)) % self.capacity
        return rows, self.storage.index(rows)

    def put(self, rows: Tensor, transitions: Transitions, added: int) -> None:
        """Write `transitions` at `rows` (as `rows_since` gave them) and take the count `added` of
        the buffer they came from: afterwards this buffer equals that one."""
        if self.storage is None:
            self._allocate(transitions)
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            tree_setitem(getattr(self.storage, name), rows, getattr(transitions, name))
        self.added, self.size, self.position = added, min(added, self.capacity), added % self.capacity

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Transitions:
        """`batch_size` transitions drawn uniformly with replacement."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty replay buffer")
        rows = torch.randint(self.size, (batch_size,), device=self.device, generator=generator)
        return self.storage.index(rows)

    def state_dict(self) -> dict:
        """The rows holding data and the count, for checkpoints (plain tensors and ints: loads
        with weights_only); the unused capacity is not saved."""
        if self.storage is None:
            return {"added": 0}
        rows, transitions = self.rows_since(0)
        return {"added": self.added, "rows": rows, "obs": transitions.obs, "actions": transitions.actions,
                "rewards": transitions.rewards, "next_obs": transitions.next_obs,
                "terminated": transitions.terminated}

    def load_state_dict(self, state: dict) -> None:
        if "rows" in state:
            self.storage = None
            self.put(state["rows"], Transitions(state["obs"], state["actions"], state["rewards"], state["next_obs"],
                                                state["terminated"]), int(state["added"]))
