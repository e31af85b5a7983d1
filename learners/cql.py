"""Conservative Q-Learning, CQL(H) (Kumar et al., 2020), on top of SAC, from an offline dataset.

The algorithm box, per gradient step on a batch (s, a, r, s', d) of the dataset:
  1. soft Bellman targets y = r + gamma (1 - d) min_i Q'_i(s', a'), a' ~ pi(s') (SAC's, with
     -alpha log pi(a'|s') only when `backup_entropy`);
  2. conservative penalty, per critic i: temperature * logsumexp over N random actions
     (uniform on [-1, 1]^A), N current-policy actions a ~ pi(s) and N next-policy actions
     a' ~ pi(s') (all evaluated at s), each minus its log density (importance weights), minus
     Q_i(s, a_data); critic loss = mean squared Bellman error + cql_weight * penalty;
  3. with `lagrange`, the weight is alpha' * cql_weight, alpha' >= 0 tuned by gradient ascent so
     that the penalty (the action gap) is held at `target_action_gap`;
  4. actor and temperature as in SAC, or behaviour cloning (maximise log pi(a_data|s)) during the
     first `bc_steps` updates; target critics by Polyak averaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from lightning.fabric import Fabric
from torch import Tensor, nn

from buffers.offline import OfflineDataset
from buffers.replay import Transitions
from buffers.tree import tree_cat
from learners.fabric import (
    FabricConfig,
    adam,
    broadcast_parameters,
    check_finite,
    make_fabric,
    optimize,
    polyak_update,
)
from learners.networks import SquashedGaussianAgent
from learners.sac import SACConfig, SACLearner


@dataclass
class CQLConfig:
    """CQL(H)'s hyperparameters, defaults from Kumar et al. (2020) for the Gym tasks (fixed
    weight 5, 10 sampled actions, importance sampling) and CORL's cql.py. The SAC part uses
    an actor learning rate of 1e-4 (the paper's; SAC's default is 3e-4)."""

    sac: SACConfig = field(default_factory=lambda: SACConfig(actor_lr=1e-4))
    num_updates: int = 100_000
    cql_n_actions: int = 10          # N actions per source in the log-sum-exp
    cql_weight: float = 5.0          # the paper's alpha (min_q_weight in its code)
    cql_temperature: float = 1.0
    importance_sample: bool = True   # subtract log densities (CQL(H) with importance weights)
    lagrange: bool = False           # tune the weight so the action gap stays at target_action_gap
    target_action_gap: float = 5.0
    alpha_prime_lr: float = 3e-4
    bc_steps: int = 0                # behaviour-cloning warm-up updates of the actor
    backup_entropy: bool = False     # include -alpha log pi(a'|s') in the Bellman target
    normalize_obs: bool = True       # standardise observations with the dataset's statistics


def cql_penalty(q_data: Tensor, q_random: Tensor, q_current: Tensor, q_next: Tensor,
                log_prob_current: Tensor, log_prob_next: Tensor, random_log_density: float,
                temperature: float, importance_sample: bool = True) -> Tensor:
    """CQL(H)'s conservative term of one critic: E_s[T logsumexp_a Q(s, a) / T] - E_(s,a)~D[Q(s, a)].

    q_data (B,) at the dataset's actions; q_random, q_current, q_next (B, N) at N uniform,
    current-policy and next-policy actions, with their log densities `random_log_density`
    (a constant), log_prob_current, log_prob_next (B, N). With importance sampling the
    log-sum-exp estimates log of the integral of exp Q over actions (each sample divided by its
    proposal density; the log densities carry no gradient); without, the dataset action joins
    the samples unweighted.
    """
    if importance_sample:
        samples = torch.cat([q_random - random_log_density, q_next - log_prob_next.detach(),
                             q_current - log_prob_current.detach()], dim=1)
    else:
        samples = torch.cat([q_random, q_data[:, None], q_next, q_current], dim=1)
    return (temperature * torch.logsumexp(samples / temperature, dim=1)).mean() - q_data.mean()


class CQLLearner(SACLearner):
    """SAC's learner with the conservative critic loss, the Lagrangian weight and BC warm-up."""

    def __init__(self, agent: nn.Module, action_dim: int, config: CQLConfig, fabric: Fabric) -> None:
        super().__init__(agent, action_dim, config.sac, fabric)
        self.cql, self.action_dim = config, action_dim
        self.log_alpha_prime = torch.zeros((), device=fabric.device, requires_grad=True)
        self.alpha_prime_optimizer = adam([self.log_alpha_prime], lr=config.alpha_prime_lr)

    def penalty_actions(self, batch: Transitions) -> tuple[Tensor, Tensor, Tensor]:
        """The log-sum-exp's sampled actions: N uniform on [-1, 1]^A per state (B N, A), and N of
        pi(s) followed by N of pi(s') per state (2 B N, A) with their log pi (2 B N,), drawn in
        one call without gradient (the penalty trains the critics, not the actor)."""
        n = self.cql.cql_n_actions
        random_actions = torch.empty(batch.actions.shape[0] * n, self.action_dim,
                                     device=batch.actions.device).uniform_(-1.0, 1.0)
        with torch.no_grad():
            policy_actions, policy_log_prob = self.agent.sample(tree_cat([batch.obs, batch.next_obs]), repeats=n)
        return random_actions, policy_actions, policy_log_prob

    def penalties(self, batch: Transitions, random_actions: Tensor, policy_actions: Tensor,
                  policy_log_prob: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(Q_1, Q_2 at the dataset's actions (B,), CQL(H)'s penalty of Q_1, of Q_2), all at s. The
        critics take one pass per source of actions (data, random, current, next policy): on CPU,
        four passes run faster than one over the concatenation (B + 3 B N rows), whose hidden
        activations no longer fit in the cache. The sampled actions' passes take the N actions of
        each state as `repeats`."""
        cfg, n, B = self.cql, self.cql.cql_n_actions, batch.actions.shape[0]
        current_actions, next_actions = policy_actions.split(B * n)
        with self.fabric.autocast():
            q_data = self.agent.q_values(batch.obs, batch.actions)                       # 2 x (B,)
            q_random, q_current, q_next = (self.agent.q_values(batch.obs, actions, repeats=n)   # 2 x (B N,) each
                                           for actions in (random_actions, current_actions, next_actions))
        log_prob_current, log_prob_next = policy_log_prob.float().view(2, B, n)
        q1_data, q2_data = (q.float() for q in q_data)
        penalty1, penalty2 = (
            cql_penalty(q_data[i].float(), q_random[i].float().view(B, n), q_current[i].float().view(B, n),
                        q_next[i].float().view(B, n), log_prob_current, log_prob_next,
                        self.action_dim * math.log(0.5), cfg.cql_temperature, cfg.importance_sample)
            for i in range(2))
        return q1_data, q2_data, penalty1, penalty2

    def update(self, batch: Transitions) -> dict[str, float]:
        """One CQL gradient step on a batch of the offline dataset (the algorithm box above)."""
        self.num_updates += 1
        cfg, alpha = self.cql, self.alpha

        # 1. soft Bellman target (the entropy term only with backup_entropy)
        target_q = self.critic_target(batch, alpha if cfg.backup_entropy else torch.zeros_like(alpha))

        # 2. conservative penalty: log-sum-exp over random, current-policy and next-policy actions
        q1_data, q2_data, penalty1, penalty2 = self.penalties(batch, *self.penalty_actions(batch))
        # the Bellman error is the full mean squared error (SAC's is half of it), the scale
        # against which the paper's conservative weight is set
        qf1_bellman = ((q1_data - target_q) ** 2).mean()
        qf2_bellman = ((q2_data - target_q) ** 2).mean()

        # 3. fixed weight, or Lagrangian: alpha' * weight * (penalty - target gap), alpha' >= 0
        if cfg.lagrange:
            alpha_prime = self.log_alpha_prime.exp().clamp(0.0, 1e6)
            conservative1 = alpha_prime.detach() * cfg.cql_weight * (penalty1 - cfg.target_action_gap)
            conservative2 = alpha_prime.detach() * cfg.cql_weight * (penalty2 - cfg.target_action_gap)
            alpha_prime_loss = -0.5 * alpha_prime * cfg.cql_weight * (
                (penalty1.detach() - cfg.target_action_gap) + (penalty2.detach() - cfg.target_action_gap))
            check_finite({"losses/alpha_prime_loss": alpha_prime_loss}, "CQL", self.num_updates)
            optimize(self.fabric, alpha_prime_loss, self.alpha_prime_optimizer)
        else:
            alpha_prime = torch.ones(())
            conservative1, conservative2 = cfg.cql_weight * penalty1, cfg.cql_weight * penalty2
        critic_loss = qf1_bellman + qf2_bellman + conservative1 + conservative2
        check_finite({"losses/qf1_loss": qf1_bellman, "losses/qf2_loss": qf2_bellman,
                      "losses/cql_penalty1": penalty1, "losses/cql_penalty2": penalty2}, "CQL", self.num_updates)
        optimize(self.fabric, critic_loss, self.critic_optimizer)
        stats = {"losses/qf1_values": q1_data.mean().item(), "losses/qf2_values": q2_data.mean().item(),
                 "losses/qf1_loss": qf1_bellman.item(), "losses/qf2_loss": qf2_bellman.item(),
                 "losses/cql_penalty": 0.5 * (penalty1 + penalty2).item(),
                 "losses/alpha_prime": float(alpha_prime.detach()), "losses/alpha": alpha.item()}

        # 4. actor and temperature: behaviour cloning during warm-up, SAC's losses after
        if self.num_updates <= cfg.bc_steps:
            stats.update(self.behaviour_cloning_step(batch, alpha))
        elif self.num_updates % self.config.policy_delay == 0:
            stats.update(self.actor_and_alpha_step(batch.obs, alpha))
        polyak_update(*self.critic_pairs, self.config.tau)
        return stats

    def behaviour_cloning_step(self, batch: Transitions, alpha: Tensor) -> dict[str, float]:
        """Warm-up actor step: minimise alpha log pi(a|s) - log pi(a_data|s) (CQL's BC start)."""
        with self.fabric.autocast():
            _, log_prob = self.agent.sample(batch.obs)
            data_log_prob = self.agent.log_prob(batch.obs, batch.actions)
        bc_loss = (alpha * log_prob.float() - data_log_prob.float()).mean()
        check_finite({"losses/bc_loss": bc_loss}, "CQL", self.num_updates)
        optimize(self.fabric, bc_loss, self.actor_optimizer)
        return {"losses/actor_loss": bc_loss.item(), "losses/entropy": -log_prob.mean().item()}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "log_alpha_prime": self.log_alpha_prime.detach().clone(),
                "alpha_prime_optimizer": self.alpha_prime_optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.log_alpha_prime.copy_(state["log_alpha_prime"])
        self.alpha_prime_optimizer.load_state_dict(state["alpha_prime_optimizer"])


@dataclass
class OfflineResult:
    """A finished offline run: the learner and the observation statistics it trained under."""

    learner: SACLearner
    obs_mean: Tensor
    obs_std: Tensor


def train_offline(dataset: OfflineDataset, config: CQLConfig, fabric_config: FabricConfig,
                  conservative: bool = True, fabric: Fabric | None = None) -> OfflineResult:
    """Train the default agent on `dataset` for `config.num_updates` steps: CQL, or with
    `conservative=False` plain SAC on the same data and settings (the offline baseline)."""
    fabric = fabric or make_fabric(fabric_config)
    obs, actions = dataset.transitions.obs, dataset.transitions.actions
    if config.normalize_obs:
        mean, std = dataset.normalization()
        dataset = dataset.normalized(mean, std)
    else:
        mean, std = torch.zeros(obs.shape[1:]), torch.ones(obs.shape[1:])
    dataset = dataset.to(fabric.device)
    agent = SquashedGaussianAgent(int(np.prod(obs.shape[1:])), actions.shape[1], (config.sac.hidden,) * 2)
    agent = agent.to(fabric.device)
    broadcast_parameters(fabric, agent)
    learner = (CQLLearner(agent, actions.shape[1], config, fabric) if conservative
               else SACLearner(agent, actions.shape[1], config.sac, fabric))
    for step in range(1, config.num_updates + 1):
        stats = learner.update(dataset.sample(config.sac.batch_size))
        if step % 1000 == 0:
            fabric.log_dict(stats, step=step)
    return OfflineResult(learner, mean, std)
