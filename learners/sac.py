"""Soft Actor-Critic (Haarnoja et al., 2018a, b): twin Q networks with Polyak-averaged targets,
a tanh-squashed Gaussian actor, automatic entropy tuning to a target entropy, a configurable
update-to-data ratio and a delayed policy update.

`SACLearner.update(batch)` is one gradient step of critics (and, every `policy_delay` steps,
of actor and temperature) on any agent with `sample`, `q_values`, `actor_parameters` and
`critic_parameters` (see `learners.networks`); `train_sac` is the loop on gymnasium envs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import Tensor, nn

from buffers.replay import ReplayBuffer, Transitions
from learners.fabric import (
    FabricConfig,
    adam,
    broadcast_parameters,
    check_finite,
    make_fabric,
    optimize,
    polyak_update,
)
from learners.gym_tasks import (
    autoresets_next_step,
    command_line,
    final_observations,
    finished_episodes,
    make_vector_env,
)
from learners.networks import SquashedGaussianAgent


@dataclass
class SACConfig:
    """SAC's hyperparameters, with the defaults of Haarnoja et al. (2018b). Differences from SB3:
    learning_starts (SB3: 100), the actor's log std clamped to [-5, 2] (SB3: [-20, 2]); same lr,
    tau, batch. From CleanRL: one learning rate (CleanRL: q_lr=1e-3), policy_delay=1 (CleanRL:
    2, with the delayed actor stepped twice), learning_starts=5000 like CleanRL."""

    total_timesteps: int = 1_000_000
    num_envs: int = 1
    buffer_size: int = 1_000_000
    learning_starts: int = 5_000     # uniform random actions before the first update
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.005               # Polyak averaging of the target critics
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 1.0          # initial entropy temperature
    autotune: bool = True            # tune alpha so that the policy's entropy tracks target_entropy
    target_entropy: float | None = None   # None: -dim(A), the paper's heuristic
    utd_ratio: int = 1               # gradient steps per env step (update-to-data ratio)
    policy_delay: int = 1            # actor and alpha step once per this many critic steps
    hidden: int = 256


class SACLearner:
    """SAC's learning state: the agent, a deep copy of it as target critics, one optimizer each
    for actor, critics and log alpha."""

    def __init__(self, agent: nn.Module, action_dim: int, config: SACConfig, fabric: Fabric) -> None:
        self.agent, self.config, self.fabric = agent, config, fabric
        self.target = copy.deepcopy(agent).requires_grad_(False)   # target critics (its actor is unused)
        self.critic_pairs = self._critic_pairs()
        self.actor_optimizer = adam(agent.actor_parameters(), lr=config.actor_lr)
        self.critic_optimizer = adam(agent.critic_parameters(), lr=config.critic_lr)
        self.target_entropy = -float(action_dim) if config.target_entropy is None else config.target_entropy
        self.log_alpha = torch.tensor(np.log(config.init_alpha), device=fabric.device, requires_grad=True)
        self.alpha_optimizer = adam([self.log_alpha], lr=config.alpha_lr)
        self.num_updates = 0

    def _critic_pairs(self) -> tuple[list[Tensor], list[Tensor]]:
        """(target, online) critic parameters, matched by name through the deep copy."""
        online = {id(p) for p in self.agent.critic_parameters()}
        target = dict(self.target.named_parameters())
        pairs = [(target[name], p) for name, p in self.agent.named_parameters() if id(p) in online]
        return [t for t, _ in pairs], [p for _, p in pairs]

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp().detach()

    def critic_target(self, batch: Transitions, alpha: Tensor) -> Tensor:
        """Soft Bellman target r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(s')."""
        with torch.no_grad():
            next_action, next_log_prob = self.agent.sample(batch.next_obs)
            next_q1, next_q2 = self.target.q_values(batch.next_obs, next_action)
            next_v = torch.min(next_q1, next_q2).float() - alpha * next_log_prob.float()
            return batch.rewards + self.config.gamma * (1.0 - batch.terminated) * next_v

    def actor_and_alpha_step(self, obs: Tensor | dict, alpha: Tensor) -> dict[str, float]:
        """Actor: minimise alpha log pi(a|s) - min_i Q_i(s, a), a reparameterised. Temperature:
        minimise -log alpha (log pi + target entropy), pulling the entropy to its target."""
        # the critics are frozen while the actor's loss is built: it needs dQ/da, not the critics'
        # weight gradients (which the critic step would discard anyway)
        critic_params = self.critic_pairs[1]
        for p in critic_params:
            p.requires_grad_(False)
        with self.fabric.autocast():
            action, log_prob = self.agent.sample(obs)
            q1, q2 = self.agent.q_values(obs, action)
        for p in critic_params:
            p.requires_grad_(True)
        actor_loss = (alpha * log_prob.float() - torch.min(q1, q2).float()).mean()
        check_finite({"losses/actor_loss": actor_loss}, "SAC", self.num_updates)
        optimize(self.fabric, actor_loss, self.actor_optimizer)
        stats = {"losses/actor_loss": actor_loss.item(), "losses/entropy": -log_prob.mean().item()}
        if self.config.autotune:
            alpha_loss = -(self.log_alpha * (log_prob.detach().float() + self.target_entropy)).mean()
            check_finite({"losses/alpha_loss": alpha_loss}, "SAC", self.num_updates)
            optimize(self.fabric, alpha_loss, self.alpha_optimizer)
            stats["losses/alpha_loss"] = alpha_loss.item()
        return stats

    def update(self, batch: Transitions) -> dict[str, float]:
        """One SAC gradient step on a batch of transitions."""
        self.num_updates += 1
        alpha = self.alpha
        # critics: regress both Q's on the shared soft target
        target_q = self.critic_target(batch, alpha)
        with self.fabric.autocast():
            q1, q2 = self.agent.q_values(batch.obs, batch.actions)
        qf1_loss = 0.5 * ((q1.float() - target_q) ** 2).mean()
        qf2_loss = 0.5 * ((q2.float() - target_q) ** 2).mean()
        check_finite({"losses/qf1_loss": qf1_loss, "losses/qf2_loss": qf2_loss}, "SAC", self.num_updates)
        optimize(self.fabric, qf1_loss + qf2_loss, self.critic_optimizer)
        stats = {"losses/qf1_values": q1.mean().item(), "losses/qf2_values": q2.mean().item(),
                 "losses/qf1_loss": qf1_loss.item(), "losses/qf2_loss": qf2_loss.item(),
                 "losses/qf_loss": (qf1_loss + qf2_loss).item() / 2, "losses/alpha": alpha.item()}
        # delayed policy update: actor and temperature every policy_delay critic steps
        if self.num_updates % self.config.policy_delay == 0:
            stats.update(self.actor_and_alpha_step(batch.obs, alpha))
        # target critics: Polyak averaging
        polyak_update(*self.critic_pairs, self.config.tau)
        return stats

    def state_dict(self) -> dict:
        """Everything needed to resume (modules and optimizers as state dicts, plain values)."""
        return {"agent": self.agent.state_dict(), "target": self.target.state_dict(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(),
                "log_alpha": self.log_alpha.detach().clone(), "num_updates": self.num_updates,
                "config": asdict(self.config)}

    def load_state_dict(self, state: dict) -> None:
        self.agent.load_state_dict(state["agent"])
        self.target.load_state_dict(state["target"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.num_updates = int(state["num_updates"])


@dataclass
class SACResult:
    """A finished run: the learner, its replay, episodes finished during training, steps per second."""

    learner: SACLearner
    replay: ReplayBuffer
    episode_returns: list[float]
    steps_per_s: float


def train_sac(env_id: str, config: SACConfig, fabric_config: FabricConfig, fabric: Fabric | None = None,
              stop_at_return: float | None = None) -> SACResult:
    """Train the default squashed-Gaussian agent on `env_id` (Box actions, rescaled to [-1, 1]).

    With `stop_at_return`, training ends early once the last 5 finished episodes average at
    least that return: how D4RL's "medium" behaviour policies are made for offline datasets.
    """
    fabric = fabric or make_fabric(fabric_config)
    if stop_at_return is not None and fabric.world_size > 1:
        raise ValueError("stop_at_return needs a single process (processes would stop at different steps)")
    device = fabric.device
    seed = fabric_config.seed + 1000 * fabric.global_rank
    envs = make_vector_env(env_id, config.num_envs, seed, rescale_actions=True)
    next_step_autoreset = autoresets_next_step(envs)
    obs_dim = int(np.prod(envs.single_observation_space.shape))
    action_dim = int(np.prod(envs.single_action_space.shape))
    agent = SquashedGaussianAgent(obs_dim, action_dim, (config.hidden,) * 2).to(device)
    broadcast_parameters(fabric, agent)
    learner = SACLearner(agent, action_dim, config, fabric)
    buffer = ReplayBuffer(config.buffer_size, device)

    raw_obs, _ = envs.reset(seed=seed)
    resetting = np.zeros(config.num_envs, dtype=bool)   # NEXT_STEP autoreset: envs whose next step is a reset
    global_step, episode_returns = 0, []
    start = time.perf_counter()
    for _ in range(config.total_timesteps // (config.num_envs * fabric.world_size)):
        if stop_at_return is not None and len(episode_returns) >= 5 \
                and np.mean(episode_returns[-5:]) >= stop_at_return:
            break
        global_step += config.num_envs * fabric.world_size
        obs = torch.as_tensor(raw_obs, dtype=torch.float32, device=device)
        if global_step <= config.learning_starts:   # warm-up: uniform random actions
            action = torch.as_tensor(envs.action_space.sample(), dtype=torch.float32, device=device)
        else:
            with torch.no_grad():
                action = agent.act(obs)
        next_raw, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
        done = terminated | truncated
        for episodic_return, length in finished_episodes(info):
            episode_returns.append(episodic_return)
            fabric.log_dict({"charts/episodic_return": episodic_return, "charts/episodic_length": length},
                            step=global_step)
        # store the true final observation on truncation; only termination stops the bootstrap
        real_next = torch.as_tensor(final_observations(next_raw, done, info, next_step_autoreset),
                                    dtype=torch.float32, device=device)
        keep = torch.as_tensor(~resetting, device=device)   # a NEXT_STEP reset is no transition
        buffer.add(obs[keep], action[keep], torch.as_tensor(reward, device=device)[keep], real_next[keep],
                   torch.as_tensor(terminated, device=device)[keep])
        if next_step_autoreset:
            resetting = done
        raw_obs = next_raw

        if global_step > config.learning_starts:
            for _ in range(config.utd_ratio):   # update-to-data ratio
                stats = learner.update(buffer.sample(config.batch_size))
            if global_step % 1000 < config.num_envs * fabric.world_size:
                stats["charts/SPS"] = global_step / (time.perf_counter() - start)
                fabric.log_dict(stats, step=global_step)
    envs.close()
    return SACResult(learner, buffer, episode_returns, global_step / (time.perf_counter() - start))


if __name__ == "__main__":
    def train(env_id: str, config: SACConfig, fabric_config: FabricConfig, fabric: Fabric) -> tuple[dict, str]:
        result = train_sac(env_id, config, fabric_config, fabric)
        return result.learner.state_dict(), (
            f"SAC {env_id}: {len(result.episode_returns)} episodes, "
            f"last 5 mean {np.mean(result.episode_returns[-5:]):.1f}, {result.steps_per_s:.0f} steps/s")

    # python -m learners.sac env_id=Pendulum-v1 sac.utd_ratio=2
    command_line("sac", SACConfig, "Pendulum-v1", train)
