"""On-policy rollout storage for E envs and T steps, with GAE(lambda) over all envs at once.

Truncation is not termination: when an episode is cut by a time limit at step t, the return
after t is not zero but V(final observation), so GAE bootstraps from the value of the final
observation (which the caller evaluates before the autoreset replaces it). Termination
bootstraps from zero. Either way the advantage recursion stops at the episode boundary.

Vector envs that autoreset in NEXT_STEP mode (gymnasium's default, e.g. its batched CartPole)
spend one step on the reset: it ignores the action and pays no reward. Such a step is stored
with `valid = False`; its advantage never reaches a real step (the episode boundary before it
cuts the recursion), and `flatten` leaves it out of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from buffers.tree import Obs, tree_map, tree_setitem


def compute_gae(rewards: Tensor, values: Tensor, terminated: Tensor, truncated: Tensor,
                final_values: Tensor, last_value: Tensor, gamma: float,
                gae_lambda: float) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) for (T, E) rollouts.

    rewards, values, terminated, truncated, final_values: (T, E); `final_values[t]` is V of the
    final observation where step t was truncated (ignored elsewhere); last_value: (E,) V of the
    observation after the last step. Returns (advantages, returns), both (T, E).
    """
    terminated, truncated = terminated.bool(), truncated.bool()
    done = terminated | truncated
    # bootstrap: V(s') inside an episode, V(final obs) on truncation, 0 on termination
    next_values = torch.cat([values[1:], last_value[None]])                          # (T, E)
    next_values = torch.where(done, torch.zeros_like(next_values), next_values)
    next_values = torch.where(truncated & ~terminated, final_values, next_values)
    deltas = rewards + gamma * next_values - values                                  # (T, E)
    decay = gamma * gae_lambda * (~done).float()   # the recursion does not cross an episode boundary
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(last_value)
    for t in reversed(range(rewards.shape[0])):   # only the recursion itself runs step by step
        advantages[t] = last_gae = deltas[t] + decay[t] * last_gae
    return advantages, advantages + values


@dataclass
class RolloutBatch:
    """A flat batch of B = T * E on-policy samples (or a minibatch of it)."""

    obs: Obs              # (B, ...) or dict of (B, ...)
    actions: Tensor       # (B, ...)
    log_probs: Tensor     # (B,) under the policy that collected them
    values: Tensor        # (B,) V(obs) at collection
    advantages: Tensor    # (B,)
    returns: Tensor       # (B,) advantages + values, the value target

    def __len__(self) -> int:
        return self.log_probs.shape[0]

    def index(self, idx: Tensor | slice) -> RolloutBatch:
        """The samples at `idx` (a minibatch; views of this batch when `idx` is a slice). Rows are
        gathered with `index_select`, several times faster on CPU than advanced indexing."""
        take = (lambda x: x[idx]) if isinstance(idx, slice) else (lambda x: x.index_select(0, idx))
        return RolloutBatch(**{f.name: tree_map(take, getattr(self, f.name)) for f in fields(self)})


class RolloutBuffer:
    """Preallocated (T, E, ...) tensors; storage follows the structure of the first `add`."""

    def __init__(self, num_steps: int, num_envs: int, device: torch.device | str = "cpu") -> None:
        self.num_steps, self.num_envs, self.device = num_steps, num_envs, torch.device(device)
        self.step = 0
        self.obs: Obs | None = None
        self.actions: Tensor | None = None
        shape = (num_steps, num_envs)
        self.log_probs, self.values, self.rewards, self.final_values = (
            torch.zeros(shape, device=self.device) for _ in range(4))
        self.terminated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.truncated = torch.zeros(shape, dtype=torch.bool, device=self.device)
        self.valid = torch.ones(shape, dtype=torch.bool, device=self.device)
        self.advantages: Tensor | None = None
        self.returns: Tensor | None = None

    def _allocate(self, obs: Obs, action: Tensor) -> None:
        T = self.num_steps
        self.obs = tree_map(lambda x: torch.zeros((T, *x.shape), dtype=x.dtype, device=self.device), obs)
        self.actions = torch.zeros((T, *action.shape), dtype=action.dtype, device=self.device)

    def add(self, obs: Obs, action: Tensor, log_prob: Tensor, value: Tensor, reward: Tensor,
            terminated: Tensor, truncated: Tensor, final_value: Tensor | None = None,
            valid: Tensor | None = None) -> None:
        """Store one step of E envs: obs (E, ...) seen, action (E, ...) taken, and its outcome.

        final_value (E,): V(final observation) of envs whose episode was truncated at this step.
        valid (E,) bool: False where the step was a NEXT_STEP autoreset, not a decision.
        """
        if self.step >= self.num_steps:
            raise IndexError(f"rollout buffer is full ({self.num_steps} steps); call reset()")
        if self.obs is None:
            self._allocate(obs, action)
        t = self.step
        tree_setitem(self.obs, t, obs)
        self.actions[t] = action
        self.log_probs[t], self.values[t], self.rewards[t] = log_prob, value, reward
        self.terminated[t], self.truncated[t] = terminated, truncated
        self.final_values[t] = 0.0 if final_value is None else final_value
        self.valid[t] = True if valid is None else valid
        self.step += 1

    def compute_advantages(self, last_value: Tensor, gamma: float, gae_lambda: float) -> None:
        """GAE over the full buffer; `last_value` (E,) is V of the observation after the last step."""
        if self.step != self.num_steps:
            raise RuntimeError(f"rollout holds {self.step} of {self.num_steps} steps; fill it first")
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.terminated, self.truncated, self.final_values,
            last_value, gamma, gae_lambda)

    def flatten(self) -> RolloutBatch:
        """The valid samples of the T * E as one batch, in time-major order (with every step
        valid, step t of env e is row t * E + e)."""
        if self.advantages is None:
            raise RuntimeError("compute_advantages() must run before flatten()")
        rows = self.valid.reshape(-1).nonzero().squeeze(-1)
        def flat(x: Tensor) -> Tensor:
            return x.reshape(-1, *x.shape[2:])[rows]
        return RolloutBatch(tree_map(flat, self.obs), flat(self.actions), flat(self.log_probs),
                            flat(self.values), flat(self.advantages), flat(self.returns))

    def reset(self) -> None:
        """Start a new rollout (storage is reused)."""
        self.step = 0
        self.advantages = self.returns = None
