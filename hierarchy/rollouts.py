"""Rollouts of the hierarchy in the simulator: the data its learners train on.

`collect_rollout` runs E envs for `steps` bars under a `HierarchicalSystem` and records, for
the levels that learn:
  - specialists (PPO): per domain, its observation dict, latents, log-probs and values (its own
    value head's, or the central critic's column under MAPPO), and the domain's reward times
    `reward_scale`, in a `RolloutBuffer`; a truncated episode bootstraps from V(final
    observation), whose coordination input is the one of the step's decision (the reset has
    already replaced the env's weights), a ruin from zero;
  - the meta-controller (SAC on a semi-MDP): one transition per meta decision: the meta
    observation and packed action when it acted, the summed portfolio rewards (times
    `reward_scale`) of the bars it held, and the meta observation where it next acted, or
    where the episode ended (terminal on ruin) or the rollout stopped;
and the portfolio figures the logs show (`RolloutStats`). `collect_flat_rollout` does the same
for the flat single-agent policy. Episodes restart in the same step (the env's autoreset); the
meta-controller then acts at the next bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from buffers.replay import ReplayBuffer
from buffers.rollout import RolloutBuffer
from envs.vec_env import VecMarketEnv
from envs.views import meta_observation
from hierarchy.agents import FlatAgent, flat_weights, specialist_obs
from hierarchy.system import Decision, HierarchicalSystem
from risk.kernels import LIMIT_NAMES


@dataclass
class RolloutStats:
    """Per-bar portfolio figures of one rollout, (T, E) unless noted."""

    log_returns: list[np.ndarray] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    drawdown: list[np.ndarray] = field(default_factory=list)
    turnover: list[np.ndarray] = field(default_factory=list)
    costs: list[np.ndarray] = field(default_factory=list)        # fraction of equity at the fill
    allocation: list[np.ndarray] = field(default_factory=list)   # (T, E, D)
    appetite: list[np.ndarray] = field(default_factory=list)
    regime: list[np.ndarray] = field(default_factory=list)       # (T, E) true regime of the decision bar
    regime_names: tuple[str, ...] = ()                           # a synthetic market's ground truth
    bound: np.ndarray = field(default_factory=lambda: np.zeros(len(LIMIT_NAMES)))   # env-steps each limit bound
    episode_returns: list[float] = field(default_factory=list)   # summed log returns of ended episodes
    episode_lengths: list[int] = field(default_factory=list)
    meta_transitions: int = 0

    def record(self, info: dict, reward: np.ndarray, decision: Decision | None, overlay: object,
               regime: np.ndarray | None = None) -> None:
        """One bar: the step's `info` and reward, the decision taken at its start and the true
        regime of that bar (None without ground truth)."""
        self.log_returns.append(info["log_return"])
        self.rewards.append(reward)
        self.drawdown.append(info["drawdown"])
        self.turnover.append(info["turnover"])
        self.costs.append(info["costs"].sum(axis=1) / info["fill_equity"])
        if decision is not None:
            self.allocation.append(decision.allocation)
            self.appetite.append(decision.appetite)
            if regime is not None:
                self.regime.append(regime)
        report = getattr(overlay, "report", None)
        if report is not None:
            self.bound += report.bound.sum(axis=0)

    def scalars(self, domain_names: tuple[str, ...], bars_per_year: float) -> dict[str, float]:
        """TensorBoard scalars: episodic return and length (summed log return; every rollout
        ends each env's episode, as the next one restarts the envs), Sharpe (annualised, pooled
        over envs), drawdown, turnover and costs per bar, allocations, risk appetite, and the
        share of env-steps in which each overlay limit bound; with the ground truth, the mean
        allocation and appetite in each true regime (what the meta-controller does in each)."""
        log_returns = np.stack(self.log_returns)                          # (T, E)
        std = log_returns.std(ddof=1)
        out = {"charts/episodic_return": float(np.mean(self.episode_returns)),
               "charts/episodic_length": float(np.mean(self.episode_lengths)),
               "charts/reward": float(np.mean(self.rewards)),
               "charts/sharpe": float(log_returns.mean() / std * np.sqrt(bars_per_year)) if std > 0 else 0.0,
               "charts/max_drawdown": float(np.stack(self.drawdown).max(axis=0).mean()),
               "charts/turnover": float(np.mean(self.turnover)),
               "charts/costs": float(np.mean(self.costs))}
        if self.allocation:
            allocation = np.stack(self.allocation).mean(axis=(0, 1))
            out.update({f"allocation/{name}": float(a) for name, a in zip(domain_names, allocation)})
            out["allocation/risk_appetite"] = float(np.mean(self.appetite))
            out["allocation/entropy"] = float(allocation_entropy(np.stack(self.allocation)).mean())
            out.update(self._by_regime(domain_names))
        steps = log_returns.size
        out.update({f"risk/bound_{name}": float(count / steps) for name, count in zip(LIMIT_NAMES, self.bound)})
        return out


    def _by_regime(self, domain_names: tuple[str, ...]) -> dict[str, float]:
        if not self.regime:
            return {}
        regime, allocation, appetite = np.stack(self.regime), np.stack(self.allocation), np.stack(self.appetite)
        out = {}
        for k, name in enumerate(self.regime_names):
            held = regime == k
            if held.any():
                out.update({f"regime_{name}/allocation_{d}": float(a)
                            for d, a in zip(domain_names, allocation[held].mean(axis=0))})
                out[f"regime_{name}/risk_appetite"] = float(appetite[held].mean())
                out[f"regime_{name}/share"] = float(held.mean())
        return out


def allocation_entropy(allocation: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of allocations over the last axis: log D when equal, 0 when all
    capital goes to one domain."""
    share = np.clip(allocation, 1e-12, None)
    return -(share * np.log(share)).sum(axis=-1)


class _Episodes:
    """Each env's running episode (summed log return, bars), closed into `stats` at its end."""

    def __init__(self, num_envs: int, stats: RolloutStats) -> None:
        self.returns, self.lengths, self.stats = np.zeros(num_envs), np.zeros(num_envs, dtype=np.int64), stats

    def add(self, log_return: np.ndarray, done: np.ndarray) -> None:
        self.returns += log_return
        self.lengths += 1
        self.close(done)

    def close(self, envs: np.ndarray) -> None:
        envs = envs & (self.lengths > 0)
        self.stats.episode_returns += self.returns[envs].tolist()
        self.stats.episode_lengths += self.lengths[envs].tolist()
        self.returns[envs], self.lengths[envs] = 0.0, 0


class MetaTransitions:
    """Pending semi-MDP transitions of the meta-controller, one per env, flushed to a replay."""

    def __init__(self, num_envs: int, replay: ReplayBuffer) -> None:
        self.replay = replay
        self.obs: Tensor | None = None
        self.action: Tensor | None = None
        self.reward = torch.zeros(num_envs)
        self.active = np.zeros(num_envs, dtype=bool)

    def _flush(self, envs: np.ndarray, next_obs: Tensor, terminated: np.ndarray) -> int:
        envs = envs[self.active[envs]]
        if envs.size:
            rows = torch.as_tensor(envs)
            self.replay.add(self.obs[rows], self.action[rows], self.reward[rows], next_obs[rows],
                            torch.as_tensor(terminated[envs], dtype=torch.float32))
            self.active[envs] = False
        return int(envs.size)

    def on_decision(self, decision: Decision) -> int:
        """Envs whose meta acted: the held option ends here, the new one starts."""
        acted = np.flatnonzero(decision.meta_acted)
        no_termination = np.zeros(len(self.active), dtype=bool)
        count = self._flush(acted, decision.meta_obs, no_termination)
        if self.obs is None:
            self.obs, self.action = decision.meta_obs.clone(), decision.meta_action.clone()
        rows = torch.as_tensor(acted)
        self.obs[rows], self.action[rows] = decision.meta_obs[rows], decision.meta_action[rows]
        self.reward[rows] = 0.0
        self.active[acted] = True
        return count

    def on_step(self, reward: np.ndarray, terminated: np.ndarray, truncated: np.ndarray,
                final_meta_obs: Tensor) -> int:
        """Add the bar's reward; episodes that ended close their option at their final observation."""
        self.reward += torch.as_tensor(reward, dtype=torch.float32)
        return self._flush(np.flatnonzero(terminated | truncated), final_meta_obs, terminated)

    def on_rollout_end(self, meta_obs: Tensor) -> int:
        """The rollout stops: every held option bootstraps from the current meta observation."""
        return self._flush(np.arange(len(self.active)), meta_obs, np.zeros(len(self.active), dtype=bool))


def _final_rows(observation: np.ndarray, info: dict, done: np.ndarray) -> np.ndarray:
    """The observation with finished envs' rows replaced by their final (pre-reset) rows."""
    if not done.any():
        return observation
    rows = observation.copy()
    rows[done] = info["final_obs"][done]
    return rows


def collect_rollout(env: VecMarketEnv, system: HierarchicalSystem, steps: int, seed: int, reward_scale: float,
                    specialist_buffers: list[RolloutBuffer] | None = None,
                    meta_replay: ReplayBuffer | None = None, gamma: float = 0.99,
                    gae_lambda: float = 0.95) -> RolloutStats:
    """`steps` bars of every env under `system`, from a reset with `seed` (see module docstring).
    Specialists sample their positions only when `specialist_buffers` are given (they learn),
    and their GAE(gamma, gae_lambda) is computed at the end; the meta-controller samples only
    when `meta_replay` is given."""
    learn_specialists, learn_meta = specialist_buffers is not None, meta_replay is not None
    env.reset(seed=seed)
    system.bind(env.num_envs)
    truth = env.market.ground_truth
    stats = RolloutStats(regime_names=truth.regime_names if truth is not None else ())
    episodes = _Episodes(env.num_envs, stats)
    pending = MetaTransitions(env.num_envs, meta_replay) if learn_meta else None
    for buffer in specialist_buffers or []:
        buffer.reset()
    for _ in range(steps):
        decision = system.decide(env, deterministic=not learn_meta, deterministic_specialists=not learn_specialists)
        if pending is not None:
            stats.meta_transitions += pending.on_decision(decision)
        regime = truth.regime[env.state.bar] if truth is not None else None
        observation, reward, terminated, truncated, info = env.step(decision.target_weights)
        done = terminated | truncated
        stats.record(info, reward, decision, env.overlay, regime)
        episodes.add(info["log_return"], done)
        final = _final_rows(observation, info, done)
        if pending is not None:
            final_meta = torch.as_tensor(meta_observation(final, system.layout), dtype=torch.float32)
            stats.meta_transitions += pending.on_step(reward * reward_scale, terminated, truncated, final_meta)
        if learn_specialists:
            _add_specialist_steps(system, decision, specialist_buffers, info, reward_scale, terminated,
                                  truncated, final)
        if done.any():
            system.restart(np.flatnonzero(done))
    episodes.close(np.ones(env.num_envs, dtype=bool))
    if pending is not None:
        stats.meta_transitions += pending.on_rollout_end(
            torch.as_tensor(env.meta_observation(), dtype=torch.float32))
    if learn_specialists:
        _bootstrap_specialists(env, system, specialist_buffers, gamma, gae_lambda)
    return stats


def _add_specialist_steps(system: HierarchicalSystem, decision: Decision, buffers: list[RolloutBuffer],
                          info: dict, reward_scale: float, terminated: np.ndarray, truncated: np.ndarray,
                          final_observation: np.ndarray) -> None:
    cut = truncated & ~terminated
    cut_rows = torch.as_tensor(cut)
    final_values = None
    if cut.any():
        final_inputs = system.specialist_inputs(final_observation[cut], decision.coordination[cut])
        allocation = torch.stack([step.allocation for step in decision.specialists], dim=1)[cut_rows]   # (C, D)
        with torch.no_grad():
            final_values = system.specialist_values([domain_obs for domain_obs, _ in final_inputs], allocation,
                                                    decision.specialists[0].appetite[cut_rows])
    for d, (step, buffer) in enumerate(zip(decision.specialists, buffers)):
        final_value = torch.zeros(len(cut))
        if final_values is not None:
            final_value[cut_rows] = final_values[d]
        reward = torch.as_tensor(info["domain_reward"][:, d] * reward_scale, dtype=torch.float32)
        buffer.add(specialist_obs(step.domain_obs, step.instrument_obs, step.allocation, step.appetite,
                                  **step.sequence),
                   step.latent, step.log_prob, step.value, reward, torch.as_tensor(terminated),
                   torch.as_tensor(truncated), final_value)


def _bootstrap_specialists(env: VecMarketEnv, system: HierarchicalSystem, buffers: list[RolloutBuffer],
                           gamma: float, gae_lambda: float) -> None:
    """GAE for each specialist, bootstrapping from V of the observation after the rollout under
    the guidance in force (the allocation the meta would hold or choose next)."""
    inputs, _ = system.observe_specialists(env)
    allocation = torch.as_tensor(system.allocation, dtype=torch.float32)
    appetite = torch.as_tensor(system.appetite, dtype=torch.float32)
    with torch.no_grad():
        last_values = system.specialist_values([domain_obs for domain_obs, _ in inputs], allocation, appetite)
    for last_value, buffer in zip(last_values, buffers):
        buffer.compute_advantages(last_value, gamma, gae_lambda)


def collect_flat_rollout(env: VecMarketEnv, agent: FlatAgent, steps: int, seed: int, reward_scale: float,
                         max_leverage: float, buffer: RolloutBuffer, gamma: float = 0.99,
                         gae_lambda: float = 0.95) -> RolloutStats:
    """`steps` bars of every env under the flat policy from a reset with `seed`, into `buffer`
    (the portfolio reward), with its GAE(gamma, gae_lambda)."""
    observation, _ = env.reset(seed=seed)
    stats = RolloutStats()
    episodes = _Episodes(env.num_envs, stats)
    buffer.reset()
    for _ in range(steps):
        obs = torch.as_tensor(observation, dtype=torch.float32)
        with torch.no_grad():
            dist = agent.distribution(obs)
            latent = dist.sample()
            log_prob, value = dist.log_prob(latent).sum(-1), agent.value(obs)
        observation, reward, terminated, truncated, info = env.step(flat_weights(latent, max_leverage))
        done = terminated | truncated
        stats.record(info, reward, None, env.overlay)
        episodes.add(info["log_return"], done)
        cut = truncated & ~terminated
        final_value = torch.zeros(env.num_envs)
        if cut.any():
            with torch.no_grad():
                final_value[torch.as_tensor(cut)] = agent.value(
                    torch.as_tensor(info["final_obs"][cut], dtype=torch.float32))
        buffer.add(obs, latent, log_prob, value, torch.as_tensor(reward * reward_scale, dtype=torch.float32),
                   torch.as_tensor(terminated), torch.as_tensor(truncated), final_value)
    episodes.close(np.ones(env.num_envs, dtype=bool))
    with torch.no_grad():
        last_value = agent.value(torch.as_tensor(observation, dtype=torch.float32))
    buffer.compute_advantages(last_value, gamma, gae_lambda)
    return stats
