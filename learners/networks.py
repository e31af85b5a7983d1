"""Default networks for standard tasks and the interfaces the learners call.

PPO calls `policy.evaluate(obs, actions) -> (log_prob, entropy, value)`; SAC and CQL call
`agent.sample(obs) -> (action, log_prob)`, `agent.q_values(obs, action) -> (q1, q2)`,
`agent.log_prob(obs, action)` (CQL's behaviour-cloning warm-up only), and take the actor's and
critics' parameters from `agent.actor_parameters()` and `agent.critic_parameters()`. CQL also
passes `repeats=n` to `sample` and `q_values`: n actions per observation, rows in the order of
`obs.repeat_interleave(n)`, so the actor's forward pass and the critics' first layer run once per
observation, not n times. The hierarchy's networks implement the same methods; the MLPs here
are for gymnasium tasks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Normal

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def layer_init(layer: nn.Linear, gain: float = math.sqrt(2.0), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain `gain`, constant bias (PPO implementation detail)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU,
        out_gain: float | None = None) -> nn.Sequential:
    """Linear layers with `activation` between them. With `out_gain`, all layers are orthogonally
    initialised (hidden gain sqrt(2), output gain `out_gain`); without, PyTorch's default init."""
    dims, layers = (in_dim, *hidden), []
    for a, b in itertools.pairwise(dims):
        linear = nn.Linear(a, b)
        layers += [layer_init(linear) if out_gain is not None else linear, activation()]
    head = nn.Linear(dims[-1], out_dim)
    layers.append(layer_init(head, out_gain) if out_gain is not None else head)
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """PPO's default: separate tanh MLP actor and critic, orthogonally initialised (policy head
    gain 0.01 so initial actions are near uniform, value head gain 1). Discrete actions are
    categorical; continuous ones Gaussian with a state-independent log std.

    The distributions are written out by hand rather than built as `torch.distributions`
    objects, whose construction costs more than this small MLP's forward pass: categorical
    log-probabilities from one log-softmax and samples by the Gumbel-max trick; the Gaussian's
    log density in closed form, its entropy a constant of log std."""

    def __init__(self, obs_dim: int, action_space: gym.Space, hidden: tuple[int, ...] = (64, 64),
                 init_log_std: float = 0.0) -> None:
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        out_dim = int(action_space.n) if self.discrete else int(math.prod(action_space.shape))
        self.actor = mlp(obs_dim, hidden, out_dim, nn.Tanh, out_gain=0.01)
        self.critic = mlp(obs_dim, hidden, 1, nn.Tanh, out_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out_dim,), init_log_std))

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs).squeeze(-1)

    def log_prob_entropy(self, out: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """log pi(actions) and the entropy of pi, both (B,), from the actor's output `out`
        (logits (B, K), or Gaussian means (B, A))."""
        if self.discrete:
            log_probs = torch.log_softmax(out, dim=-1)                                      # (B, K)
            log_prob = log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return log_prob, -(log_probs.exp() * log_probs).sum(-1)
        z = (actions - out) * torch.exp(-self.log_std)
        log_prob = (-0.5 * z.square() - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum()
        return log_prob, entropy.expand(log_prob.shape)

    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(action, log_prob, value) for a batch of observations: a sample of pi (the mode when
        `deterministic`)."""
        out = self.actor(obs)
        if self.discrete and deterministic:
            action = out.argmax(-1)
        elif self.discrete:
            # Gumbel-max: argmax(logits + G), G ~ Gumbel(0, 1) = -log E, E ~ Exp(1), is a draw of the categorical
            action = (out - torch.empty_like(out).exponential_().log()).argmax(-1)
        else:
            action = out if deterministic else out + self.log_std.exp() * torch.randn_like(out)
        return action, self.log_prob_entropy(out, action)[0], self.value(obs)

    def evaluate(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log_prob, entropy, value) of stored actions under the current policy (PPO's update)."""
        return (*self.log_prob_entropy(self.actor(obs), actions), self.value(obs))


def squashed_gaussian_sample(mean: Tensor, log_std: Tensor, repeats: int = 1) -> tuple[Tensor, Tensor]:
    """Reparameterised a = tanh(u), u ~ N(mean, std), `repeats` draws per row (B repeats, A);
    log pi(a) by the change of variables: log N(u) - sum log(1 - tanh(u)^2), with
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), the numerically stable form (no
    1 - tanh^2 underflow at large |u|)."""
    if repeats > 1:
        mean, log_std = mean.repeat_interleave(repeats, dim=0), log_std.repeat_interleave(repeats, dim=0)
    u = mean + log_std.exp() * torch.randn_like(mean)
    log_prob = Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    log_prob = log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
    return torch.tanh(u), log_prob


def squashed_gaussian_log_prob(mean: Tensor, log_std: Tensor, action: Tensor, eps: float = 1e-6) -> Tensor:
    """log pi(a) of a given squashed action a in (-1, 1) (clipped to 1 - eps before atanh)."""
    u = torch.atanh(action.clamp(-1.0 + eps, 1.0 - eps))
    log_prob = Normal(mean, log_std.exp()).log_prob(u).sum(-1)
    return log_prob - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)


def critic_value(critic: nn.Sequential, state: Tensor, action: Tensor, repeats: int = 1) -> Tensor:
    """critic(cat([state, action])) (B repeats,) for `repeats` actions per state row (action rows
    in the order of `state.repeat_interleave(repeats)`): the first layer's state part is computed
    once per state row and added to each of its actions' part."""
    first, d = critic[0], state.shape[-1]
    hidden = F.linear(state, first.weight[:, :d], first.bias)
    if repeats > 1:
        hidden = hidden.repeat_interleave(repeats, dim=0)
    return critic[1:](hidden + F.linear(action, first.weight[:, d:])).squeeze(-1)


class SquashedGaussianAgent(nn.Module):
    """SAC's default: a tanh-squashed Gaussian actor (state-dependent log std clamped to
    [-5, 2]) and twin Q critics, ReLU MLPs of 256 x 256 (Haarnoja et al., 2018). Actions live
    in [-1, 1]^A; the env loop rescales them to the task's bounds."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256)) -> None:
        super().__init__()
        self.actor = mlp(obs_dim, hidden, 2 * action_dim)
        self.q1 = mlp(obs_dim + action_dim, hidden, 1)
        self.q2 = mlp(obs_dim + action_dim, hidden, 1)

    def _mean_log_std(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, obs: Tensor, repeats: int = 1) -> tuple[Tensor, Tensor]:
        """Reparameterised (action (B repeats, A), log_prob (B repeats,))."""
        return squashed_gaussian_sample(*self._mean_log_std(obs), repeats)

    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions to execute: tanh(mean) when deterministic, a sample otherwise."""
        if deterministic:
            return torch.tanh(self._mean_log_std(obs)[0])
        return self.sample(obs)[0]

    def log_prob(self, obs: Tensor, action: Tensor) -> Tensor:
        return squashed_gaussian_log_prob(*self._mean_log_std(obs), action)

    def q_values(self, obs: Tensor, action: Tensor, repeats: int = 1) -> tuple[Tensor, Tensor]:
        return critic_value(self.q1, obs, action, repeats), critic_value(self.q2, obs, action, repeats)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        return self.actor.parameters()

    def critic_parameters(self) -> Iterator[nn.Parameter]:
        return (p for q in (self.q1, self.q2) for p in q.parameters())
