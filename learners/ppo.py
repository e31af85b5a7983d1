"""Proximal Policy Optimization (Schulman et al., 2017) with the implementation details of
Huang et al. (2022), "The 37 Implementation Details of PPO", each named where it happens.

`ppo_update` is the whole learning step on a filled rollout and works with any policy that has
`evaluate(obs, actions) -> (log_prob, entropy, value)` (observations may be dicts of tensors; a
value of None: an actor whose critic learns apart); `value_update` is the learning step of such
a critic shared by several agents, MAPPO's (Yu et al., 2022), with value normalisation
(`ValueNormalizer`); `train_ppo` is the loop on gymnasium vector envs: rollout, GAE, update,
logging.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from torch import Tensor, nn
from torch.optim import Optimizer

from buffers.rollout import RolloutBatch, RolloutBuffer
from learners.fabric import (
    FabricConfig,
    adam,
    broadcast_parameters,
    check_finite,
    make_fabric,
    optimize,
)
from learners.gym_tasks import (
    ObservationNormalizer,
    RewardScaler,
    RunningMeanStd,
    autoresets_next_step,
    command_line,
    final_observations,
    finished_episodes,
    make_vector_env,
)
from learners.networks import ActorCritic


@dataclass
class PPOConfig:
    """PPO's hyperparameters; defaults are the paper's MuJoCo settings as in CleanRL's
    ppo_continuous_action.py. Differences from SB3's defaults: `anneal_lr` (SB3: constant lr),
    `clip_vloss` (SB3: no value clipping; its clipped variant drops the max with the unclipped
    loss), `vf_coef` weighs half the squared error (SB3: the full MSE, so SB3's vf_coef=0.5 is
    ours 1.0), `num_minibatches` instead of SB3's `batch_size` (batch_size = num_envs *
    num_steps / num_minibatches)."""

    total_timesteps: int = 1_000_000
    num_envs: int = 1
    num_steps: int = 2048            # steps per env per rollout
    learning_rate: float = 3e-4
    anneal_lr: bool = True           # linear decay to 0 over training
    gamma: float = 0.99
    gae_lambda: float = 0.95
    num_minibatches: int = 32
    update_epochs: int = 10
    norm_adv: bool = True            # advantage normalisation per minibatch
    clip_coef: float = 0.2
    clip_vloss: bool = True          # value clipping around the old values
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5       # global gradient-norm clipping
    target_kl: float | None = None   # stop the epochs early once the approx KL exceeds this
    normalize_obs: bool = False      # running observation normalisation
    normalize_reward: bool = False   # reward scaling by the std of the discounted return
    hidden: int = 64
    init_log_std: float = 0.0        # continuous actions: initial state-independent log std
    adam_eps: float = 1e-5           # CleanRL's Adam epsilon (PyTorch's default is 1e-8)
    vectorization: str = "sync"      # train_ppo's envs: "sync" or "vector_entry_point" (the task's batched env)


def ppo_update(policy: nn.Module, optimizer: Optimizer, batch: RolloutBatch, config: PPOConfig,
               fabric: Fabric, update: int = 0) -> dict[str, float]:
    """Clipped-surrogate epochs over minibatches of a flat rollout batch; returns the losses,
    entropy, KL, clip fraction and explained variance under CleanRL's scalar names (no value
    loss when the policy's `evaluate` gives no value: an actor of a centralised critic)."""
    clipfracs, n, k = [], len(batch), config.num_minibatches
    for _epoch in range(config.update_epochs):
        # k shuffled minibatches of (nearly) equal size, as views of one shuffled copy: every process
        # takes the same number of gradient steps even when their batches differ by a few reset steps
        shuffled = batch.index(torch.randperm(n, device=batch.log_probs.device))
        for i in range(k):
            mb = shuffled.index(slice(i * n // k, (i + 1) * n // k))
            with fabric.autocast():
                new_log_prob, entropy, new_value = policy.evaluate(mb.obs, mb.actions)
            log_ratio = new_log_prob.float() - mb.log_probs
            ratio = log_ratio.exp()
            with torch.no_grad():
                clipfracs.append(((ratio - 1.0).abs() > config.clip_coef).float().mean())

            advantages = mb.advantages
            if config.norm_adv:   # advantage normalisation, per minibatch
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

            # clipped surrogate objective (as a loss: the max of the negated terms)
            pg_loss1 = -advantages * ratio
            pg_loss2 = -advantages * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
            pg_loss = torch.max(pg_loss1, pg_loss2).mean()

            if new_value is None:   # a centralised critic learns apart (`value_update`)
                v_loss = torch.zeros(())
            elif config.clip_vloss:   # value clipping: the value moves at most clip_coef from the old one
                new_value = new_value.float()
                v_loss_unclipped = (new_value - mb.returns) ** 2
                v_clipped = mb.values + (new_value - mb.values).clamp(-config.clip_coef, config.clip_coef)
                v_loss_clipped = (v_clipped - mb.returns) ** 2
                v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
            else:
                v_loss = 0.5 * F.mse_loss(new_value.float(), mb.returns)

            entropy_loss = entropy.float().mean()
            loss = pg_loss + config.vf_coef * v_loss
            if config.ent_coef != 0:   # entropy bonus (with no weight, left out of the backward pass)
                loss = loss - config.ent_coef * entropy_loss
            check_finite({"losses/policy_loss": pg_loss, "losses/value_loss": v_loss,
                          "losses/entropy": entropy_loss}, "PPO", update)
            optimize(fabric, loss, optimizer, config.max_grad_norm)   # global gradient-norm clipping

        with torch.no_grad():
            # KL(old || new) estimators on the epoch's last minibatch (the ones logged and checked):
            # -log r (biased) and (r - 1) - log r (unbiased, low variance)
            old_approx_kl = (-log_ratio).mean()
            approx_kl = ((ratio - 1) - log_ratio).mean()
        # target-KL early stop (on the mean over processes, so that all of them stop together)
        if config.target_kl is not None and fabric.all_reduce(approx_kl, reduce_op="mean") > config.target_kl:
            break

    value_loss = {} if new_value is None else {"losses/value_loss": v_loss.item()}
    return {**value_loss, "losses/policy_loss": pg_loss.item(),
            "losses/entropy": entropy_loss.item(), "losses/old_approx_kl": old_approx_kl.item(),
            "losses/approx_kl": approx_kl.item(), "losses/clipfrac": torch.stack(clipfracs).mean().item(),
            "losses/explained_variance": explained_variance(batch.values, batch.returns)}


def explained_variance(predicted: Tensor, targets: Tensor) -> float:
    """1 - Var(targets - predicted) / Var(targets) (NaN when the targets do not vary), CleanRL's."""
    var_y = targets.var()
    return float("nan") if var_y == 0 else float(1 - (targets - predicted).var() / var_y)


class ValueNormalizer(RunningMeanStd):
    """MAPPO's value normalisation: the critic learns (target - mean) / std of the running
    statistics of the value targets, per output; `denormalize` maps its outputs back."""

    def normalize(self, x: Tensor) -> Tensor:
        return ((x.double() - self.mean) / torch.sqrt(self.var + 1e-8)).to(x.dtype)

    def denormalize(self, x: Tensor) -> Tensor:
        return (x.double() * torch.sqrt(self.var + 1e-8) + self.mean).to(x.dtype)


def value_update(critic: nn.Module, normalizer: ValueNormalizer, optimizer: Optimizer, obs: Tensor,
                 values: Tensor, returns: Tensor, config: PPOConfig, fabric: Fabric,
                 update: int = 0) -> dict[str, float]:
    """MAPPO's critic step on a flat batch: joint observations (B, F), the values (B, K) the
    rollout saw and the value targets (B, K) in reward units, one column per agent. The
    normaliser takes the batch's targets first (once per rollout; MAPPO: per minibatch), then
    `update_epochs` over `num_minibatches` minibatches of the clipped value loss on normalised
    targets: 0.5 max((v - y)^2, (v_old + clip(v - v_old, +-clip_coef) - y)^2), the old values
    normalised with the same statistics (MAPPO clips whatever PPO's `clip_vloss` says; its Huber
    loss, delta 10, is the squared error on normalised targets of this size)."""
    normalizer.update(returns)
    targets, old = normalizer.normalize(returns), normalizer.normalize(values)
    n, k = returns.shape[0], config.num_minibatches
    for _epoch in range(config.update_epochs):
        order = torch.randperm(n, device=returns.device)
        for i in range(k):
            rows = order[i * n // k: (i + 1) * n // k]
            with fabric.autocast():
                new = critic(obs.index_select(0, rows))
            new, old_mb, target = new.float(), old.index_select(0, rows), targets.index_select(0, rows)
            clipped = old_mb + (new - old_mb).clamp(-config.clip_coef, config.clip_coef)
            v_loss = 0.5 * torch.max((new - target) ** 2, (clipped - target) ** 2).mean()
            check_finite({"losses/value_loss": v_loss}, "MAPPO critic", update)
            optimize(fabric, v_loss, optimizer, config.max_grad_norm)   # global gradient-norm clipping
    return {"losses/value_loss": v_loss.item(), "losses/explained_variance": explained_variance(values, returns)}


@dataclass
class PPOResult:
    """A finished run: the policy, its optimizer and observation normaliser (None without), the
    env steps taken, the final update's statistics, episodes finished during training, and
    steps per second."""

    policy: ActorCritic
    optimizer: Optimizer
    obs_normalizer: ObservationNormalizer | None
    global_step: int
    stats: dict[str, float]
    episode_returns: list[float]
    steps_per_s: float


def train_ppo(env_id: str, config: PPOConfig, fabric_config: FabricConfig,
              fabric: Fabric | None = None) -> PPOResult:
    """Train the default actor-critic on `env_id` with `config.num_envs` envs per process."""
    fabric = fabric or make_fabric(fabric_config)
    device = fabric.device
    seed = fabric_config.seed + 1000 * fabric.global_rank
    envs = make_vector_env(env_id, config.num_envs, seed, vectorization=config.vectorization)
    next_step_autoreset = autoresets_next_step(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    continuous = isinstance(envs.single_action_space, gym.spaces.Box)

    policy = ActorCritic(obs_dim, envs.single_action_space, (config.hidden,) * 2, config.init_log_std).to(device)
    broadcast_parameters(fabric, policy)
    optimizer = adam(policy.parameters(), lr=config.learning_rate, eps=config.adam_eps)
    obs_normalizer = ObservationNormalizer((obs_dim,)).to(device) if config.normalize_obs else None
    reward_scaler = RewardScaler(config.num_envs, config.gamma).to(device) if config.normalize_reward else None
    buffer = RolloutBuffer(config.num_steps, config.num_envs, device)

    def observe(raw: np.ndarray, update_stats: bool) -> torch.Tensor:
        obs = torch.as_tensor(raw, dtype=torch.float32, device=device)
        return obs_normalizer(obs, update=update_stats) if obs_normalizer is not None else obs

    steps_per_rollout = config.num_envs * config.num_steps * fabric.world_size
    num_updates = config.total_timesteps // steps_per_rollout
    raw_obs, _ = envs.reset(seed=seed)
    obs = observe(raw_obs, update_stats=True)
    resetting = np.zeros(config.num_envs, dtype=bool)   # NEXT_STEP autoreset: envs whose next step is a reset
    global_step, episode_returns, stats = 0, [], {}
    start = time.perf_counter()
    for update in range(1, num_updates + 1):
        if config.anneal_lr:   # learning-rate annealing: linear to 0 at the last update
            optimizer.param_groups[0]["lr"] = (1.0 - (update - 1.0) / num_updates) * config.learning_rate

        # rollout: num_steps steps of every env under the current policy
        buffer.reset()
        for _ in range(config.num_steps):
            global_step += config.num_envs * fabric.world_size
            with torch.inference_mode():   # no autograd bookkeeping while acting
                action, log_prob, value = policy.act(obs)
            env_action = action.cpu().numpy()
            if continuous:   # the Gaussian is unbounded: clip what the env sees, store the sample
                env_action = np.clip(env_action, envs.single_action_space.low, envs.single_action_space.high)
            next_raw, reward, terminated, truncated, info = envs.step(env_action)
            done = terminated | truncated
            for episodic_return, length in finished_episodes(info):
                episode_returns.append(episodic_return)
                if fabric.loggers:   # (Fabric's log_dict costs a few env steps even with nothing to log to)
                    fabric.log_dict({"charts/episodic_return": episodic_return,
                                     "charts/episodic_length": length}, step=global_step)
            # truncation bootstraps from V(final observation), read before the autoreset replaces it
            final_value, cut = None, truncated & ~terminated
            if cut.any():
                final_obs = observe(final_observations(next_raw, done, info, next_step_autoreset)[cut],
                                    update_stats=False)
                final_value = torch.zeros(config.num_envs, device=device)
                with torch.inference_mode():
                    final_value[torch.as_tensor(cut, device=device)] = policy.value(final_obs)
            reward_t = torch.as_tensor(reward, dtype=torch.float32, device=device)
            if reward_scaler is not None:
                reward_t = reward_scaler(reward_t, torch.as_tensor(done, device=device))
            # a NEXT_STEP reset ignores the action and pays nothing: stored, but not a decision to learn from
            buffer.add(obs, action, log_prob, value, reward_t, torch.as_tensor(terminated, device=device),
                       torch.as_tensor(truncated, device=device), final_value,
                       valid=torch.as_tensor(~resetting, device=device) if next_step_autoreset else None)
            if next_step_autoreset:
                resetting = done
            obs = observe(next_raw, update_stats=True)

        # GAE(lambda) over the rollout, bootstrapping from V of the observation after it
        with torch.no_grad():
            buffer.compute_advantages(policy.value(obs), config.gamma, config.gae_lambda)
        stats = ppo_update(policy, optimizer, buffer.flatten(), config, fabric, update)
        stats["charts/learning_rate"] = optimizer.param_groups[0]["lr"]
        stats["charts/SPS"] = global_step / (time.perf_counter() - start)
        fabric.log_dict(stats, step=global_step)
    envs.close()
    return PPOResult(policy, optimizer, obs_normalizer, global_step, stats, episode_returns,
                     global_step / (time.perf_counter() - start))


def checkpoint_state(result: PPOResult, config: PPOConfig) -> dict:
    """What a PPO checkpoint holds: state dicts of policy, optimizer and observation statistics,
    the env steps taken, and the config as plain values."""
    state = {"policy": result.policy, "optimizer": result.optimizer, "global_step": result.global_step,
             "config": asdict(config)}
    if result.obs_normalizer is not None:
        state["obs_normalizer"] = result.obs_normalizer
    return state


if __name__ == "__main__":
    def train(env_id: str, config: PPOConfig, fabric_config: FabricConfig, fabric: Fabric) -> tuple[dict, str]:
        result = train_ppo(env_id, config, fabric_config, fabric)
        return checkpoint_state(result, config), (
            f"PPO {env_id}: {len(result.episode_returns)} episodes, "
            f"last 10 mean {np.mean(result.episode_returns[-10:]):.1f}, {result.steps_per_s:.0f} steps/s")

    # python -m learners.ppo env_id=CartPole-v1 ppo.num_envs=8 fabric.strategy=ddp fabric.devices=2
    command_line("ppo", PPOConfig, "CartPole-v1", train)
