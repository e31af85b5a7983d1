"""The hierarchy's networks behind the learners' interfaces, so PPO, SAC and CQL train them
without knowing what a market is.

PPO (`learners.ppo.ppo_update`) calls `policy.evaluate(obs, actions) -> (log_prob, entropy,
value)`; SAC and CQL (`learners.sac.SACLearner`, `learners.cql.CQLLearner`) call
`agent.sample(obs)`, `agent.q_values(obs, action)`, `agent.log_prob(obs, action)` and take
`agent.actor_parameters()` and `agent.critic_parameters()`.

A specialist's observation is a dict of tensors (`SPECIALIST_OBS_KEYS`): what its encoder sees
(domain_obs (B, F_d), instrument_obs (B, n_d, F_i)) and what it was given (allocation,
appetite (B,)); a sequence specialist's also holds its window (B, W, n_d, F_w) and, if it is
recurrent, the state it held before the bar (B, S) (`SEQUENCE_KEYS`), so that PPO re-runs every
stored step from the state it was acted from. PPO acts on pre-squash latents u (B, n_d), the
positions being tanh(u); CQL on the squashed positions tanh(u) in (-1, 1), with the change of
variables in its log-density. Both views share the same heads and log std, so CQL's actor
initialises PPO's policy as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import Tensor, nn

from envs.vec_env import VecMarketEnv
from hierarchy.distributions import pack_action
from hierarchy.networks import FlatPolicy, MetaController, Specialist, gaussian
from learners.networks import critic_value, mlp, squashed_gaussian_log_prob, squashed_gaussian_sample

SPECIALIST_OBS_KEYS: tuple[str, ...] = ("domain_obs", "instrument_obs", "allocation", "appetite")
SEQUENCE_KEYS: tuple[str, ...] = ("window", "state")


def specialist_obs(domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor, appetite: Tensor,
                   **sequence: Tensor) -> dict[str, Tensor]:
    """A specialist's observation as the learners store it (`sequence`: its window and state)."""
    return {**dict(zip(SPECIALIST_OBS_KEYS, (domain_obs, instrument_obs, allocation, appetite))), **sequence}


def specialist_distribution(specialist: Specialist, obs: dict[str, Tensor]) -> torch.distributions.Normal:
    """The specialist's policy at stored observations, its window and state included when stored."""
    return specialist.distribution(*(obs[key] for key in SPECIALIST_OBS_KEYS),
                                   **{key: obs[key] for key in SEQUENCE_KEYS if key in obs})


class SpecialistPolicy(nn.Module):
    """PPO's view of a specialist: independent Gaussians over the latents, its value head."""

    def __init__(self, specialist: Specialist) -> None:
        super().__init__()
        self.specialist = specialist

    def evaluate(self, obs: dict[str, Tensor], actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log_prob (B,), entropy (B,), value (B,)) of stored latents `actions` (B, n_d)."""
        dist = specialist_distribution(self.specialist, obs)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), self.value(obs)

    def value(self, obs: dict[str, Tensor]) -> Tensor:
        return self.specialist.value(obs["domain_obs"], obs["allocation"], obs["appetite"])


class SpecialistActor(SpecialistPolicy):
    """A specialist's actor alone, for PPO under a centralised critic (MAPPO): `evaluate` gives no
    value (the critic learns apart)."""

    def evaluate(self, obs: dict[str, Tensor], actions: Tensor) -> tuple[Tensor, Tensor, None]:
        dist = specialist_distribution(self.specialist, obs)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), None


class SpecialistQAgent(nn.Module):
    """CQL's view of a specialist: a tanh-squashed Gaussian actor (the specialist's encoder,
    heads and state-independent log std) and twin Q critics of [domain_obs, allocation,
    appetite, positions] (ReLU MLPs, as SAC's defaults). The value head is not CQL's: after
    pre-training it is distilled from the critics (`hierarchy.pretrain.distill_value`)."""

    def __init__(self, specialist: Specialist, domain_obs_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.specialist = specialist
        critic_in = domain_obs_dim + 2 + len(specialist.symbols)
        self.q1 = mlp(critic_in, (hidden, hidden), 1)
        self.q2 = mlp(critic_in, (hidden, hidden), 1)

    def _mean_log_std(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        mean, log_std = self.specialist(*(obs[key] for key in SPECIALIST_OBS_KEYS))
        return mean, log_std.expand_as(mean)

    def sample(self, obs: dict[str, Tensor], repeats: int = 1) -> tuple[Tensor, Tensor]:
        """Reparameterised (positions (B repeats, n_d) in (-1, 1), log_prob (B repeats,))."""
        return squashed_gaussian_sample(*self._mean_log_std(obs), repeats)

    def act(self, obs: dict[str, Tensor], deterministic: bool = False) -> Tensor:
        """Positions to execute: tanh(mean) when deterministic, a sample otherwise."""
        if deterministic:
            return torch.tanh(self._mean_log_std(obs)[0])
        return self.sample(obs)[0]

    def log_prob(self, obs: dict[str, Tensor], action: Tensor) -> Tensor:
        return squashed_gaussian_log_prob(*self._mean_log_std(obs), action)

    def q_values(self, obs: dict[str, Tensor], action: Tensor, repeats: int = 1) -> tuple[Tensor, Tensor]:
        state = torch.cat([obs["domain_obs"], obs["allocation"][:, None], obs["appetite"][:, None]], dim=-1)
        return critic_value(self.q1, state, action, repeats), critic_value(self.q2, state, action, repeats)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        value = {id(p) for p in self.specialist.value_head.parameters()}
        return (p for p in self.specialist.parameters() if id(p) not in value)

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        return (p for q in (self.q1, self.q2) for p in q.parameters())


class MetaAgent(nn.Module):
    """SAC's view of the meta-controller: actions packed as [allocation, appetite] (B, D + 1),
    whose log-density lives on the D free coordinates (so SAC's target entropy is -D)."""

    def __init__(self, meta: MetaController) -> None:
        super().__init__()
        self.meta = meta

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        allocation, appetite, log_prob = self.meta.policy(obs).rsample()
        return pack_action(allocation, appetite), log_prob

    def q_values(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        return self.meta.q_values(obs, action)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        return self.meta.actor_parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        return (p for q in (self.meta.q1, self.meta.q2) for p in q.parameters())


class FlatAgent(nn.Module):
    """PPO's view of the flat single-agent policy: Gaussians over N latents of the whole flat
    observation, one value of the portfolio reward."""

    def __init__(self, policy: FlatPolicy) -> None:
        super().__init__()
        self.policy = policy

    @classmethod
    def for_env(cls, env: VecMarketEnv, specialist_hidden: int) -> FlatAgent:
        """A fresh flat policy sized from `env`, twice a specialist's width (it sees every instrument)."""
        return cls(FlatPolicy(env.single_observation_space.shape[0], env.market.n_instruments, 2 * specialist_hidden))

    def distribution(self, obs: Tensor) -> torch.distributions.Normal:
        return gaussian(*self.policy(obs))

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dist = self.distribution(obs)
        return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1), self.policy.value(obs)

    def value(self, obs: Tensor) -> Tensor:
        return self.policy.value(obs)


def flat_weights(latent: Tensor, max_leverage: float) -> np.ndarray:
    """The flat policy's target weights: w_i = L_max * tanh(u_i) / N (gross at most L_max)."""
    return (max_leverage * torch.tanh(latent) / latent.shape[-1]).double().numpy()


def flat_decide(agent: FlatAgent, max_leverage: float) -> Callable[[VecMarketEnv], np.ndarray]:
    """The flat policy's deterministic decision (its latent means) for a one-env walk."""
    def decide(env: VecMarketEnv) -> np.ndarray:
        with torch.no_grad():
            mean, _ = agent.policy(torch.as_tensor(env.observation, dtype=torch.float32))
        return flat_weights(mean, max_leverage)
    return decide
