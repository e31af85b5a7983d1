"""The evaluation after training: the trained policies (each at its best validation checkpoint)
and the baselines walked once through the evaluation split, post-cost and pre-cost, and through
the same split of `evaluation.test_universes` fresh universes of a synthetic market (post-cost),
behind the same risk overlay and costs, written to the run's `eval/` folder (`eval.backtest.write_evaluation`;
the layout is in `learners.run.folder`). Baselines rebalance on the meta-controller's calendar,
from the split's first bar.
"""

from __future__ import annotations

import pandas as pd

from eval.backtest import walk_policies, write_evaluation
from eval.universes import walk_universes
from learners.experiment.loop import RunContext
from learners.run.folder import EvaluationRecord, TrainingRecord
from learners.run.restore import Policies

# (metric, header with its unit, scale): returns, volatility, drawdown and costs in percent as in the
# report's tables, turnover in multiples of equity a year
TABLE_COLUMNS = (("ann_return", "return %/yr", 100.0), ("ann_vol", "vol %/yr", 100.0), ("sharpe", "Sharpe", 1.0),
                 ("max_drawdown", "max DD %", 100.0), ("turnover", "turnover x/yr", 1.0),
                 ("costs", "costs %/yr", 100.0))


def regime_frame(ctx: RunContext, part: str) -> pd.DataFrame:
    """The detected regime probabilities on split `part`, indexed by timestamp."""
    ws = ctx.ws
    start = ws.start(part)
    rows = slice(start, start + ws.splits[part].n_bars)
    probs = ws.features.regime_probs[rows]
    return pd.DataFrame(probs, index=pd.Index(ws.market.timestamps[rows], name="timestamp"),
                        columns=[f"regime_{k}" for k in range(probs.shape[1])])


def evaluate(ctx: RunContext, policies: Policies, training: TrainingRecord) -> EvaluationRecord:
    """Walk the policies and `evaluation.baselines` through the evaluation split, post-cost and
    (with `evaluation.pre_cost`) pre-cost, and write the run's `eval/` folder (rank 0 only)."""
    config, ws = ctx.config, ctx.ws
    part, baselines = config.evaluation.split, list(config.evaluation.baselines)
    log = ctx.folder.decisions_file if config.evaluation.decision_log else None
    results = walk_policies(ws, policies, baselines, part, 1.0, log)
    pre_cost = walk_policies(ws, policies, baselines, part, 0.0) if config.evaluation.pre_cost else []
    count = config.evaluation.test_universes if config.market.source == "synthetic" else 0
    universes = walk_universes(ws, policies, policies.names + baselines, part, count) if count else None
    return write_evaluation(ctx.folder, config, part, ws.splits[part], results, pre_cost, training,
                            regime_frame(ctx, part), universes)


def results_table(record: EvaluationRecord) -> str:
    """The terminal table of post-cost results: one row per policy, in the report's units; a walk
    that ended early (the book ruined) is marked with the bar it ended at."""
    frame = pd.DataFrame(record.policies).T
    table = pd.DataFrame({header: frame[key].astype(float) * scale for key, header, scale in TABLE_COLUMNS})
    text = table.to_string(float_format="{:+.2f}".format)
    ruined = frame["ruin_bar"].dropna() if "ruin_bar" in frame else pd.Series(dtype=float)
    notes = [f"{policy}: RUINED, the walk ended at bar {int(bar)} of the split; its figures cover those bars only"
             for policy, bar in ruined.items()]
    return "\n".join([text, *notes])
