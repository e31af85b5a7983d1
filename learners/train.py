"""`python -m learners.train`: the hydra entry point of the three-phase curriculum.

    python -m learners.train phase=1            # specialists: CQL pre-training, then PPO
    python -m learners.train phase=2            # meta-controller (runs phase 1 first if this run has none)
    python -m learners.train phase=3 init_from=runs/default/<timestamp>   # joint, from an earlier run
    python -m learners.train phase=all budget=demo
    python -m learners.train -m ablation=full,no_meta seed=0,1,2          # a sweep
    python -m learners.train phase=all resume=true hydra.run.dir=runs/default/<timestamp>

It composes `configs/train.yaml` (typed by `learners.run.config.TrainConfig`), builds the
workspace (market, splits, features and the run's effective settings, written to
`resolved.yaml`), runs the phases the config asks for (each phase needs the one before: taken
from this run folder, from `init_from`, or run first, saying so), then evaluates the best
checkpoint and the baselines on the test split and prints the results table. The run folder's
layout is in `learners.run.folder`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from learners.experiment.curriculum import train_policies
from learners.experiment.evaluation import evaluate, results_table
from learners.experiment.loop import RunContext, TrainingStopped
from learners.experiment.walk_forward import run_walk_forward
from learners.fabric import make_fabric
from learners.run.config import TrainConfig, check_config, register_configs
from learners.run.folder import EvaluationRecord, RunFolder
from learners.run.workspace import Workspace

register_configs()


def train(config: TrainConfig, run_dir: Path) -> EvaluationRecord | None:
    """Everything `main` does, given a resolved config and the run folder; returns what the
    evaluation wrote to metrics.json (None on processes other than rank 0)."""
    check_config(config)
    fabric = make_fabric(dataclasses.replace(config.fabric, seed=config.seed, log_dir=""))
    folder = RunFolder(run_dir)
    started = folder.started_phases()
    if started and not config.resume:
        raise FileExistsError(f"{run_dir} already holds checkpoints of {started}; pass resume=true to "
                              f"continue it, or train in a new folder")
    if fabric.global_rank == 0:
        folder.write_config(config)
    ws = Workspace.build(config, fabric.world_size)
    if fabric.global_rank == 0:
        folder.write_settings(ws.settings)
    fabric.print(f"market {ws.market.name}: {ws.market.n_instruments} instruments x {ws.market.n_bars} bars; "
                 f"train {ws.splits.train.n_bars}, validation {ws.splits.validation.n_bars}, "
                 f"test {ws.splits.test.n_bars}; {len(ws.features.instrument_names)} instrument features, "
                 f"warm-up {ws.warmup_bars} bars" + ("; CONTROL: next-bar returns leak into the "
                                                      "observations" if config.leak_next_return else ""))
    ctx = RunContext(ws, fabric, folder, config.resume)
    policies, training = train_policies(ctx)
    if fabric.global_rank != 0:
        return None
    if config.evaluation.walk_forward.enabled:
        run_walk_forward(ctx)
    record = evaluate(ctx, policies, training)
    print(f"\n{record.split} split, {record.first_bar[:10]} .. {record.last_bar[:10]}, "
          f"after costs:\n{results_table(record)}")
    return record


@hydra.main(config_path="../configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    config: TrainConfig = OmegaConf.to_object(cfg)
    print(OmegaConf.to_yaml(cfg))
    try:
        train(config, Path(HydraConfig.get().runtime.output_dir))
    except TrainingStopped as stopped:
        print(f"training stopped: {stopped}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
