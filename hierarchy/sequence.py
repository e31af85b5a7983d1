"""Specialists that read sequences: the env's window of the last W bars of the domain's
instrument features (`VecMarketEnv.specialist_window`, (B, W, n_d, F_w), oldest bar first).

Each type summarises the window into (B, H) and mixes it with the MLP's encoding of the current
bar's domain observation (`mix`: Linear(2H, H), tanh); the instrument heads, log std and value
head are the MLP specialist's. Types:
  transformer  causal self-attention over the window's bars: each bar a token (its instruments'
               features, linearly embedded, plus a sinusoidal encoding of its position); a mask
               keeps bar j from attending to any bar after j; the newest bar's output is the summary;
  lstm_cnn     causal 1-D convolutions over the window, averaged over time, then one LSTM step
               per bar from the state carried since the episode started (`state_size` = 2H: h
               and c); the system zeroes it at episode starts and stores the state held before
               each bar with the step, so PPO re-runs each step from its stored state;
  tactical     the last `TACTICAL_BARS` bars of every instrument through one tanh layer: short-
               horizon returns and patterns, no memory.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hierarchy.networks import Specialist, layer_init, register_specialist

ATTENTION_HEADS = 4
CONV_KERNEL = 3
TACTICAL_BARS = 4


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """(length, dim) the Transformer's fixed positional encoding (Vaswani et al., 2017)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention over bars in which bar i attends to bars j <= i only (the lower-
    triangular mask of `scaled_dot_product_attention(is_causal=True)`, 1.8x the explicit softmax's
    speed on one CPU thread)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hierarchy.specialist_hidden={dim} must be a multiple of {heads} attention heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, W, H) -> (B, W, H)."""
        B, W, H = x.shape
        q, k, v = self.qkv(x).view(B, W, 3, self.heads, H // self.heads).permute(2, 0, 3, 1, 4)   # (B, h, W, d)
        attended = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)          # (B, h, W, d)
        return self.out(attended.transpose(1, 2).reshape(B, W, H))


class _WindowSpecialist(Specialist):
    """A specialist whose encoder also summarises the window; subclasses define `summary`."""

    reads_window = True

    def __init__(self, domain: str, symbols: tuple[str, ...], domain_obs_dim: int, instrument_obs_dim: int,
                 hidden: int, window_shape: tuple[int, int]) -> None:
        super().__init__(domain, symbols, domain_obs_dim, instrument_obs_dim, hidden)
        self.window, self.bar_features = window_shape[0], len(symbols) * window_shape[1]   # W, n_d F_w
        self.mix = nn.Sequential(layer_init(nn.Linear(2 * hidden, hidden)), nn.Tanh())

    def summary(self, window: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(B, H) of the window (B, W, n_d, F_w) and the next recurrent state."""
        raise NotImplementedError

    def encode(self, domain_obs: Tensor, window: Tensor | None = None,
               state: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if window is None:
            raise ValueError(f"specialist '{self.domain}' reads the bars' window and was given none")
        summary, next_state = self.summary(window, state)
        return self.mix(torch.cat([self.domain_encoder(domain_obs), summary], dim=-1)), next_state


@register_specialist("transformer")
class TransformerSpecialist(_WindowSpecialist):
    """One pre-norm Transformer block (causal attention, then a ReLU MLP) over the window's bars."""

    def __init__(self, domain: str, symbols: tuple[str, ...], domain_obs_dim: int, instrument_obs_dim: int,
                 hidden: int, window_shape: tuple[int, int]) -> None:
        super().__init__(domain, symbols, domain_obs_dim, instrument_obs_dim, hidden, window_shape)
        self.embed = nn.Linear(self.bar_features, hidden)
        self.register_buffer("positions", sinusoidal_positions(self.window, hidden), persistent=False)
        self.attention_norm, self.mlp_norm = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attention = CausalSelfAttention(hidden, ATTENTION_HEADS)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, hidden))

    def bars(self, window: Tensor) -> Tensor:
        """(B, W, H) every bar's output; bar j's depends on bars <= j only."""
        x = self.embed(window.flatten(2)) + self.positions                       # (B, W, H)
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))

    def summary(self, window: Tensor, state: Tensor | None) -> tuple[Tensor, None]:
        return self.bars(window)[:, -1], None


@register_specialist("lstm_cnn")
class LSTMCNNSpecialist(_WindowSpecialist):
    """Two causal convolutions (kernel `CONV_KERNEL`, ReLU) over the window, their mean over the
    bars, then one LSTM step from the carried state (h, c), packed as (B, 2H)."""

    def __init__(self, domain: str, symbols: tuple[str, ...], domain_obs_dim: int, instrument_obs_dim: int,
                 hidden: int, window_shape: tuple[int, int]) -> None:
        super().__init__(domain, symbols, domain_obs_dim, instrument_obs_dim, hidden, window_shape)
        self.state_size = 2 * hidden
        self.convs = nn.ModuleList([nn.Conv1d(self.bar_features, hidden, CONV_KERNEL),
                                    nn.Conv1d(hidden, hidden, CONV_KERNEL)])
        self.lstm = nn.LSTMCell(hidden, hidden)

    def summary(self, window: Tensor, state: Tensor | None) -> tuple[Tensor, Tensor]:
        x = window.flatten(2).transpose(1, 2)                                   # (B, n_d F_w, W)
        for conv in self.convs:   # left padding only: output bar j sees bars <= j
            x = torch.relu(conv(nn.functional.pad(x, (CONV_KERNEL - 1, 0))))
        if state is None:
            state = x.new_zeros(x.shape[0], self.state_size)
        h, c = self.lstm(x.mean(-1), state.chunk(2, dim=-1))
        return h, torch.cat([h, c], dim=-1)


@register_specialist("tactical")
class TacticalSpecialist(_WindowSpecialist):
    """The last `TACTICAL_BARS` bars of the domain's instruments through one tanh layer."""

    def __init__(self, domain: str, symbols: tuple[str, ...], domain_obs_dim: int, instrument_obs_dim: int,
                 hidden: int, window_shape: tuple[int, int]) -> None:
        super().__init__(domain, symbols, domain_obs_dim, instrument_obs_dim, hidden, window_shape)
        if self.window < TACTICAL_BARS:
            raise ValueError(f"env.window={self.window}: the tactical specialist reads the last {TACTICAL_BARS} bars")
        self.patterns = nn.Sequential(layer_init(nn.Linear(TACTICAL_BARS * self.bar_features, hidden)), nn.Tanh())

    def summary(self, window: Tensor, state: Tensor | None) -> tuple[Tensor, None]:
        return self.patterns(window[:, -TACTICAL_BARS:].flatten(1)), None
