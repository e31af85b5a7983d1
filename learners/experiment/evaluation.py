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

TABLE_COLUMNS = ("ann_return", "ann_vol", "sharpe", "max_drawdown", "turnover", "costs")


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
    """The terminal table of post-cost results: one row per policy."""
    frame = pd.DataFrame(record.policies).T[list(TABLE_COLUMNS)]
    return frame.to_string(float_format="{:+.3f}".format)
