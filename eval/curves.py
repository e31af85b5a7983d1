"""Validation curves of training runs, and the budget at which each phase plateaus.

Every phase validates its deterministic policy every `curriculum.validate_every` rollouts and
keeps the best checkpoint, so what more env steps buy a phase is a higher best validation
Sharpe so far. Per phase, over the runs given (seeds of one config), the curve is the mean over
runs of that best-so-far against env steps; its plateau is the first env-step count at which the
curve has made `fraction` of its whole rise from the phase's start (the rule that sizes the
paper budget). A phase whose curve never rises above its start plateaus at its first validation
after the start.

    python -m eval.curves runs/curves/multirun_<stamp> --fraction 0.9 --figure paper/figures/curves.pdf
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from learners.run.folder import RunFolder
from learners.run.settings import TRAINED_PHASES
from risk.correlation import save_atomically


def validation_curves(folders: list[RunFolder]) -> pd.DataFrame:
    """Rows (run, phase, rollout, env_steps, sharpe, best) from each run's validation.jsonl."""
    rows = []
    for folder in folders:
        for phase in TRAINED_PHASES:
            records = folder.validation_records(phase)
            if not records:
                continue
            best = np.maximum.accumulate([r["sharpe"] for r in records])
            rows += [{"run": str(folder.path), "phase": phase, **r, "best": b} for r, b in zip(records, best)]
    if not rows:
        raise FileNotFoundError(f"no validation.jsonl in {[str(f.path) for f in folders]}")
    return pd.DataFrame(rows)


def plateaus(curves: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """Per phase: the mean best-so-far at the start and the end, and the env steps at which it
    first made `fraction` of its rise (see the module docstring)."""
    out = {}
    for phase, rows in curves.groupby("phase", sort=False):
        mean = rows.groupby("env_steps")["best"].mean()            # over runs, at each validation point
        start, end = mean.iloc[0], mean.iloc[-1]
        reached = mean.index[mean >= start + fraction * (end - start)] if end > start else mean.index[1:2]
        out[phase] = {"start": start, "end": end, "plateau_env_steps": int(reached[0]),
                      "runs": rows["run"].nunique(), "max_env_steps": int(mean.index[-1])}
    return pd.DataFrame.from_dict(out, orient="index")


def curves_figure(curves: pd.DataFrame, table: pd.DataFrame, path: Path) -> None:
    """One panel per phase: each run's validation Sharpe, the mean best-so-far and the plateau."""
    phases = list(table.index)
    figure = Figure(figsize=(4 * len(phases), 3.2))
    FigureCanvasAgg(figure)
    for k, phase in enumerate(phases):
        axes = figure.add_subplot(1, len(phases), k + 1)
        rows = curves[curves.phase == phase]
        for _, run in rows.groupby("run"):
            axes.plot(run.env_steps, run.sharpe, color="0.75", linewidth=0.8)
        mean = rows.groupby("env_steps")["best"].mean()
        axes.plot(mean.index, mean.values, color="C0", label="mean best so far")
        axes.axvline(table.at[phase, "plateau_env_steps"], color="C3", linestyle="--", label="plateau")
        axes.set_title(phase)
        axes.set_xlabel("env steps")
        axes.set_ylabel("validation Sharpe")
    figure.axes[0].legend(fontsize=7)
    figure.tight_layout()
    save_atomically(figure, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a folder holding the runs (each with phase*/validation.jsonl)")
    parser.add_argument("--fraction", type=float, default=0.9)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args(argv)
    runs = sorted({path.parent.parent for path in args.root.rglob("phase*/validation.jsonl")})
    curves = validation_curves([RunFolder(path) for path in runs])
    table = plateaus(curves, args.fraction)
    print(table.to_string(float_format="{:.3f}".format))
    if args.figure is not None:
        curves_figure(curves, table, args.figure)


if __name__ == "__main__":
    main()
