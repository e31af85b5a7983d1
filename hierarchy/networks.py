"""Networks of the hierarchy: the meta-controller, domain specialists with instrument heads, and
the flat single-agent policy used as a baseline and ablation.

Dimensions come from the environment's views, never hard-coded. Instrument positions are
tanh-squashed Gaussians: a head outputs the mean of a pre-squash latent u and the position is
tanh(u) in [-1, 1]. PPO works on the latent (the tanh Jacobian cancels in its probability ratio),
and CQL, a squashed-Gaussian SAC, trains the same head architecture, so its weights initialise
PPO's heads directly.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.distributions import Normal

from hierarchy.distributions import AllocationDistribution, pack_action
from learners.networks import LOG_STD_MAX, LOG_STD_MIN, layer_init, mlp

INITIAL_APPETITE = 0.99      # the meta-controller's risk appetite before it has learned (phase 1 held 1.0)


def tanh_mlp(in_dim: int, hidden: int, out_dim: int, out_gain: float) -> nn.Sequential:
    """Two tanh hidden layers, orthogonally initialised (CleanRL's PPO trunk)."""
    return mlp(in_dim, (hidden, hidden), out_dim, nn.Tanh, out_gain)


def portfolio_encoder(obs_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """Linear, ReLU, LayerNorm, Linear, ReLU, Dropout: the meta-controller's state encoder."""
    return nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.LayerNorm(hidden),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout))


class MetaController(nn.Module):
    """Portfolio state -> allocation over domains (simplex), risk appetite ([0, 1]), and twin Q.

    The actor and each critic own an encoder of the same architecture, so that critic losses and
    the actor loss do not fight over shared features (the usual choice in SAC). Dropout and
    LayerNorm in the critics follow DroQ (Hiraoka et al., 2022), which keeps Q estimates stable.
    A `risk_agent` (a module mapping the observation to the appetite latent's (mean, log std),
    each (B, 1)) replaces the actor's appetite head; it learns with the actor.
    """

    def __init__(self, obs_dim: int, n_domains: int, hidden: int = 128, dropout: float = 0.1,
                 logit_scale: float = 3.0, risk_agent: nn.Module | None = None) -> None:
        super().__init__()
        self.n_domains, self.logit_scale = n_domains, logit_scale
        # the actor starts where phase 1 left the specialists: its deterministic action is the
        # equal allocation at (nearly) full risk appetite (small output weights, biased appetite)
        latents = n_domains if risk_agent is None else n_domains - 1
        head = layer_init(nn.Linear(hidden, 2 * latents), gain=0.01)
        if risk_agent is None:
            nn.init.constant_(head.bias[n_domains - 1], math.atanh(2.0 * INITIAL_APPETITE - 1.0))
        self.actor = nn.Sequential(portfolio_encoder(obs_dim, hidden, dropout), head)
        self.risk_agent = risk_agent
        action_dim = n_domains + 1
        self.q1, self.q2 = (nn.Sequential(portfolio_encoder(obs_dim + action_dim, hidden, dropout),
                                          nn.Linear(hidden, 1)) for _ in range(2))

    def policy(self, obs: Tensor) -> AllocationDistribution:
        mean, log_std = self.actor(obs).chunk(2, dim=-1)
        if self.risk_agent is not None:
            risk_mean, risk_log_std = self.risk_agent(obs)
            mean, log_std = torch.cat([mean, risk_mean], dim=-1), torch.cat([log_std, risk_log_std], dim=-1)
        return AllocationDistribution(mean, log_std, self.logit_scale)

    def actor_parameters(self) -> Iterator[nn.Parameter]:
        """The actor's parameters, the risk agent's after them."""
        return itertools.chain(self.actor.parameters(),
                               () if self.risk_agent is None else self.risk_agent.parameters())

    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """(allocation (B, D), appetite (B,), log_prob (B,)); log_prob is 0 when deterministic."""
        dist = self.policy(obs)
        if deterministic:
            allocation, appetite = dist.mode()
            return allocation, appetite, torch.zeros_like(appetite)
        return dist.rsample()

    def q_values(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Twin Q of (B, D + 1) packed actions (see `pack_action`)."""
        x = torch.cat([obs, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def module_key(symbol: str) -> str:
    """A symbol as an nn.ModuleDict key (no dots or other separators)."""
    return re.sub(r"\W", "_", symbol)


class StackedLinear(nn.Module):
    """n independent linear layers applied in one batched matmul: (n, B, in) -> (n, B, out).
    Each layer is orthogonally initialised with gain `gain` and zero bias, as `layer_init` does."""

    def __init__(self, n: int, in_dim: int, out_dim: int, gain: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))       # x @ weight[k], not weight.T
        self.bias = nn.Parameter(torch.zeros(n, 1, out_dim))
        for k in range(n):
            self.weight.data[k] = nn.init.orthogonal_(torch.empty(out_dim, in_dim), gain).T

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class InstrumentHeads(nn.Module):
    """One head per instrument of a domain, all evaluated in one batched pass: head k maps
    [domain features, instrument k's observation, allocation, appetite] through two tanh layers
    to the mean of instrument k's latent (the architecture of `tanh_mlp(in_dim, hidden, 1)`)."""

    def __init__(self, n: int, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.n = n
        self.layers = nn.ModuleList([StackedLinear(n, in_dim, hidden, math.sqrt(2.0)),
                                     StackedLinear(n, hidden, hidden, math.sqrt(2.0)),
                                     StackedLinear(n, hidden, 1, 0.01)])

    def forward(self, x: Tensor) -> Tensor:
        """(B, n, in_dim) -> latent means (B, n)."""
        h = x.transpose(0, 1)                                              # (n, B, in)
        for layer in self.layers[:-1]:
            h = torch.tanh(layer(h))
        return self.layers[-1](h).squeeze(-1).T


class Specialist(nn.Module):
    """One domain: a domain encoder, one head per instrument, a state-independent log std per
    instrument, and a value head of the domain's reward (PPO). This type ('mlp') encodes the
    current bar's domain observation alone; the sequence types (`hierarchy.sequence`) also read
    the env's window of the domain's instruments (`reads_window`) and may carry a recurrent
    state from bar to bar (`state_size`). Every type's value head reads the current bar."""

    reads_window: bool = False     # its encoder reads the window (B, W, n_d, F_w): needs env.window > 0
    state_size: int = 0            # the recurrent state (B, state_size) it carries across bars; 0: none

    def __init__(self, domain: str, symbols: tuple[str, ...], domain_obs_dim: int,
                 instrument_obs_dim: int, hidden: int = 64, init_log_std: float = -0.5) -> None:
        super().__init__()
        self.domain, self.symbols = domain, tuple(symbols)
        self.domain_encoder = nn.Sequential(layer_init(nn.Linear(domain_obs_dim, hidden)), nn.Tanh())
        self.heads = InstrumentHeads(len(symbols), hidden + instrument_obs_dim + 2, hidden)
        self.log_std = nn.Parameter(torch.full((len(symbols),), init_log_std))
        self.value_head = tanh_mlp(domain_obs_dim + 2, hidden, 1, out_gain=1.0)

    def _given(self, allocation: Tensor, appetite: Tensor) -> Tensor:
        return torch.stack([allocation, appetite], dim=-1)                # (B, 2)

    def encode(self, domain_obs: Tensor, window: Tensor | None = None,
               state: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Domain features (B, H) and the next recurrent state (None: the type carries none)."""
        return self.domain_encoder(domain_obs), None

    def head_means(self, features: Tensor, instrument_obs: Tensor, allocation: Tensor,
                   appetite: Tensor) -> tuple[Tensor, Tensor]:
        """Latent means (B, n) and log stds (n,) from the domain features (B, H)."""
        B, n = instrument_obs.shape[:2]
        given = self._given(allocation, appetite)
        x = torch.cat([features[:, None].expand(B, n, -1), instrument_obs, given[:, None].expand(B, n, 2)], dim=-1)
        return self.heads(x), self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def forward(self, domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor, appetite: Tensor,
                window: Tensor | None = None, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Latent means (B, n) and log stds (n,) for the domain's n instruments.

        domain_obs (B, F_d); instrument_obs (B, n, F_i); allocation, appetite (B,); for the
        sequence types, window (B, W, n, F_w) and the recurrent state held before this bar."""
        features, _ = self.encode(domain_obs, window, state)
        return self.head_means(features, instrument_obs, allocation, appetite)

    def distribution(self, domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor, appetite: Tensor,
                     window: Tensor | None = None, state: Tensor | None = None) -> Normal:
        """The policy over the domain's pre-squash latents u (B, n): independent Gaussians (the
        positions are tanh(u)); built without argument validation, as every input is a network's."""
        return self.policy_step(domain_obs, instrument_obs, allocation, appetite, window, state)[0]

    def policy_step(self, domain_obs: Tensor, instrument_obs: Tensor, allocation: Tensor, appetite: Tensor,
                    window: Tensor | None = None, state: Tensor | None = None) -> tuple[Normal, Tensor | None]:
        """The policy at this bar (`distribution`) and the recurrent state after it (None: the
        type carries none): what acting needs."""
        features, next_state = self.encode(domain_obs, window, state)
        return gaussian(*self.head_means(features, instrument_obs, allocation, appetite)), next_state

    def value(self, domain_obs: Tensor, allocation: Tensor, appetite: Tensor) -> Tensor:
        return self.value_head(torch.cat([domain_obs, self._given(allocation, appetite)], dim=-1)).squeeze(-1)


def gaussian(mean: Tensor, log_std: Tensor) -> Normal:
    """Independent Gaussians of latent means (B, n) and log stds (n,), without argument validation."""
    return Normal(mean, log_std.exp().expand_as(mean), validate_args=False)


SPECIALIST_TYPES: dict[str, type[Specialist]] = {"mlp": Specialist}


def register_specialist(name: str) -> Callable[[type[Specialist]], type[Specialist]]:
    """Class decorator: make a Specialist subclass selectable by `hierarchy.specialist_type` and
    `hierarchy.specialists.<domain>`. A type that reads the window takes the window's shape
    (W, F_w) as a sixth constructor argument."""
    def register(cls: type[Specialist]) -> type[Specialist]:
        if name in SPECIALIST_TYPES:
            raise KeyError(f"specialist type '{name}' is already registered")
        SPECIALIST_TYPES[name] = cls
        return cls
    return register


def build_specialists(domains: dict[str, tuple[str, ...]], types: dict[str, str], domain_obs_dims: dict[str, int],
                      instrument_obs_dim: int, hidden: int, default_type: str = "mlp",
                      window_shape: tuple[int, int] = (0, 0)) -> nn.ModuleDict:
    """One specialist per domain of the universe; `types` maps a domain to a registered type
    name (domains it does not name get `default_type`); `window_shape` is the env's window
    (W, F_w), 0 bars when it has none."""
    unknown = sorted(set(types) - set(domains))
    if unknown:
        raise KeyError(f"hierarchy.specialists names domains not in the universe: {unknown}; "
                       f"the universe has {sorted(domains)}")
    specialists = {}
    for domain, symbols in domains.items():
        key = f"hierarchy.specialists.{domain}" if domain in types else "hierarchy.specialist_type"
        name = types.get(domain, default_type)
        if name not in SPECIALIST_TYPES:
            raise KeyError(f"{key}: unknown type '{name}'; registered: {sorted(SPECIALIST_TYPES)}")
        cls = SPECIALIST_TYPES[name]
        if cls.reads_window and window_shape[0] < 1:
            raise ValueError(f"{key}='{name}' reads the bars' window: set env.window to its number of bars")
        args = (domain, symbols, domain_obs_dims[domain], instrument_obs_dim, hidden)
        specialists[module_key(domain)] = cls(*args, window_shape) if cls.reads_window else cls(*args)
    return nn.ModuleDict(specialists)


class FlatPolicy(nn.Module):
    """Single-agent PPO policy over all instruments: flat observation -> latent means (B, N),
    log stds (N,) and one value of the portfolio reward."""

    def __init__(self, obs_dim: int, n_instruments: int, hidden: int = 128, init_log_std: float = -0.5) -> None:
        super().__init__()
        self.actor_mean = tanh_mlp(obs_dim, hidden, n_instruments, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((n_instruments,), init_log_std))
        self.critic = tanh_mlp(obs_dim, hidden, 1, out_gain=1.0)

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        return self.actor_mean(obs), self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(obs).squeeze(-1)


__all__ = ["MetaController", "Specialist", "InstrumentHeads", "FlatPolicy", "SPECIALIST_TYPES", "gaussian",
           "register_specialist", "build_specialists", "pack_action", "module_key"]
