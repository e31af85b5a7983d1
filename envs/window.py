"""The rolling window of the last W bars' instrument features, for policies that read sequences.

A ring buffer per env of 2W rows (E, 2W, N, F) float32 in which every bar is written twice, at
slot p and p + W (p = head, the same for every env: they step together), so that the last W bars,
oldest first, are always the contiguous slots p + 1 .. p + W: one strided view of the ring for all
envs, never a copy of the market. A step writes one row per env (twice); an env that starts an
episode has its W rows refilled from the tables. Row t of the features is what is known at the
close of bar t, so the window at bar t holds bars t - W + 1 .. t; rows before the market's first
bar are 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _push(ring: np.ndarray, head: int, features: np.ndarray, bars: np.ndarray) -> None:
    """Write bar `bars[e]`'s features of every env e at slots head and head + W."""
    W = ring.shape[1] // 2
    for e in range(ring.shape[0]):
        row = features[bars[e]]
        ring[e, head] = row
        ring[e, head + W] = row


@njit(cache=True)
def _refill(ring: np.ndarray, head: int, features: np.ndarray, envs: np.ndarray, bars: np.ndarray) -> None:
    """Write the W bars ending at `bars[k]` into env `envs[k]`'s window (both copies of each slot)."""
    W = ring.shape[1] // 2
    for k in range(envs.shape[0]):
        e = envs[k]
        for j in range(W):
            bar = bars[k] - W + 1 + j
            slot = (head + 1 + j) % W
            if bar >= 0:
                ring[e, slot] = features[bar]
                ring[e, slot + W] = features[bar]
            else:
                ring[e, slot] = 0.0
                ring[e, slot + W] = 0.0


class BarWindow:
    """The last `window` rows of a (T, N, F) feature table at each of E envs' current bars."""

    def __init__(self, features: np.ndarray, num_envs: int, window: int) -> None:
        if window < 1:
            raise ValueError(f"env.window={window}: a window holds at least 1 bar")
        self.features = features                                                  # (T, N, F)
        self.window = window
        self.ring = np.zeros((num_envs, 2 * window, *features.shape[1:]), dtype=features.dtype)
        self.head = window - 1

    def advance(self, bars: np.ndarray) -> None:
        """Every env moved one bar, to `bars` (E,): write its new row."""
        self.head = (self.head + 1) % self.window
        _push(self.ring, self.head, self.features, bars)

    def refill(self, envs: np.ndarray, bars: np.ndarray) -> None:
        """Envs `envs` (re)started at `bars`: their windows end there."""
        _refill(self.ring, self.head, self.features, envs, bars)

    def view(self) -> np.ndarray:
        """(E, W, N, F) view of every env's last W bars, oldest first; the next step overwrites it."""
        return self.ring[:, self.head + 1: self.head + 1 + self.window]
