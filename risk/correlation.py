"""`CorrelationTracker`: rolling correlation of instrument returns over a window kept in a ring
buffer, with detection of correlation spikes and breakdowns, and a heat map.

One stream of bars (the market, or one env's walk through it). Once `window` bars are in, each
update computes the correlation matrix of the last `window` returns and its average pairwise
correlation (the mean over pairs i < j; pairs with a constant instrument are left out). Against
the mean of the previous `baseline` averages m, the bar is a
    spike       if average > m + max(threshold * |m|, min_change),
    breakdown   if average < m - max(threshold * |m|, min_change),
and normal otherwise. `min_change` keeps a market whose correlations hover around zero, where
any relative move is noise, from flagging every bar. Each onset (a bar whose state differs from
the bar before) is logged in `events`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from storage.atomic import atomic_path


@dataclass(frozen=True)
class CorrelationEvent:
    """The onset of a spike, a breakdown or a return to normal."""

    step: int              # the tracker's update count at the onset (0 for the first update)
    state: str
    average: float         # average pairwise correlation at that bar
    baseline: float        # mean of the previous `baseline` averages


class CorrelationTracker:
    """Rolling correlation of the instruments `names` over `window` bars."""

    def __init__(self, names: Sequence[str], window: int = 60, baseline: int = 20,
                 threshold: float = 0.3, min_change: float = 0.05) -> None:
        self.names = tuple(names)
        if len(self.names) < 2:
            raise ValueError(f"a correlation needs at least two instruments, got {self.names}")
        if window < 3 or baseline < 1:
            raise ValueError(f"window={window} must be >= 3 and baseline={baseline} >= 1")
        if threshold < 0 or min_change < 0:
            raise ValueError(f"threshold={threshold} and min_change={min_change} must be >= 0")
        self.window, self.baseline, self.threshold, self.min_change = (
            window, baseline, threshold, min_change)
        self._returns = np.zeros((window, len(self.names)))          # (W, N) ring buffer
        self._averages = np.full(baseline, np.nan)                   # (B,) ring of averages
        self.step = 0
        self.correlation: np.ndarray | None = None                   # (N, N) once ready
        self.average = np.nan
        self.state = "normal"
        self.events: list[CorrelationEvent] = []

    @property
    def ready(self) -> bool:
        return self.step >= self.window

    def update(self, returns: np.ndarray) -> str:
        """Add one bar's returns (N,); returns the bar's state ("normal" until ready)."""
        r = np.asarray(returns, dtype=np.float64)
        if r.shape != (len(self.names),) or not np.isfinite(r).all():
            raise ValueError(f"returns must be {len(self.names)} finite numbers, got {r}")
        self._returns[self.step % self.window] = r
        self.step += 1
        if not self.ready:
            return self.state
        with np.errstate(divide="ignore", invalid="ignore"):
            self.correlation = np.corrcoef(self._returns, rowvar=False)       # (N, N)
        pairs = self.correlation[np.triu_indices(len(self.names), k=1)]
        pairs = pairs[np.isfinite(pairs)]
        self.average = float(pairs.mean()) if pairs.size else np.nan
        baseline = float(self._averages.mean())          # NaN until `baseline` averages exist
        state = self.classify(self.average, baseline)
        self._averages[(self.step - self.window) % self.baseline] = self.average
        if state != self.state:
            self.events.append(CorrelationEvent(self.step - 1, state, self.average, baseline))
            self.state = state
        return state

    def classify(self, average: float, baseline: float) -> str:
        if not (np.isfinite(average) and np.isfinite(baseline)):
            return "normal"
        band = max(self.threshold * abs(baseline), self.min_change)
        if average > baseline + band:
            return "spike"
        if average < baseline - band:
            return "breakdown"
        return "normal"

    def heatmap(self, path: str | Path | None = None) -> Figure:
        """The current correlation matrix as a heat map; saved as an image at `path` (written
        to a temporary file, then renamed) when given."""
        if self.correlation is None:
            raise RuntimeError(f"no correlation yet: {self.step} of {self.window} bars seen")
        figure = Figure(figsize=(1.0 + 0.45 * len(self.names), 0.6 + 0.4 * len(self.names)))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        image = axes.imshow(self.correlation, cmap="RdBu_r", vmin=-1.0, vmax=1.0)
        ticks = np.arange(len(self.names))
        axes.set_xticks(ticks, self.names, rotation=90)
        axes.set_yticks(ticks, self.names)
        axes.set_title(f"{self.window}-bar correlation at update {self.step - 1}: "
                       f"average {self.average:.2f} ({self.state})", fontsize="small")
        figure.colorbar(image, ax=axes)
        figure.tight_layout()
        if path is not None:
            save_atomically(figure, Path(path))
        return figure


def save_atomically(figure: Figure, path: Path) -> None:
    """Write the figure to `path` (its format from the suffix), atomically."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary)
