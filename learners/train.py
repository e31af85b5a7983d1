"""`python -m learners.train`: the hydra entry point of the three-phase curriculum.

    python -m learners.train phase=1            # specialists: CQL pre-training, then PPO
    python -m learners.train phase=2            # meta-controller (runs phase 1 first if this run has none)
    python -m learners.train phase=3 init_from=runs/default/<timestamp>   # joint, from an earlier run
    python -m learners.train phase=all budget=demo
    python -m learners.train -m ablation=full,no_meta seed=0,1,2          # a sweep
    python -m learners.train phase=all resume=true hydra.run.dir=runs/default/<timestamp>

It composes `configs/train.yaml` (typed by `learners.train_config.TrainConfig`), builds the
market, its splits and features, runs the phases the config asks for (each phase needs the one
before: taken from this run folder, from `init_from`, or run first, saying so), then evaluates
the best checkpoint and the baselines on the test split and prints the results table. The run
folder holds `.hydra/` (the resolved config), `phase1/ phase2/ phase3/` (checkpoints,
TensorBoard events, validation.jsonl) and `eval/` (see `learners.evaluation`).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from learners.curriculum import train_policies
from learners.evaluation import evaluate, results_table
from learners.fabric import make_fabric
from learners.phases import RunContext, TrainingStopped
from learners.train_config import TrainConfig, phase_list, register_configs
from learners.walk_forward import run_walk_forward
from learners.workspace import SPLITS, Workspace

register_configs()


def check_config(config: TrainConfig) -> None:
    """Raise ValueError naming the key of any setting the curriculum cannot run with."""
    phase_list(config.phase)
    if config.curriculum.pretrain not in ("cql", "none"):
        raise ValueError(f"curriculum.pretrain='{config.curriculum.pretrain}' is not one of 'cql', 'none'")
    period, bars = config.hierarchy.meta_period, config.curriculum.rollout_bars
    if period < 1 or bars < 1 or bars % period:
        raise ValueError(f"curriculum.rollout_bars={bars} must be a positive multiple of "
                         f"hierarchy.meta_period={period}")
    if config.evaluation.split not in SPLITS:
        raise ValueError(f"evaluation.split='{config.evaluation.split}' is not one of {SPLITS}")
    if config.ablation.policy not in ("hierarchy", "flat"):
        raise ValueError(f"ablation.policy='{config.ablation.policy}' is not one of 'hierarchy', 'flat'")
    if config.init_from and not Path(config.init_from).is_dir():
        raise FileNotFoundError(f"init_from={config.init_from}: no such run folder")


def train(config: TrainConfig, run_dir: Path) -> dict | None:
    """Everything `main` does, given a resolved config and the run folder; returns the metrics
    written by the evaluation (None on processes other than rank 0)."""
    check_config(config)
    fabric = make_fabric(dataclasses.replace(config.fabric, seed=config.seed, log_dir=""))
    started = [p for p in ("phase1", "phase2", "phase3", "flat_ppo") if (run_dir / p / "checkpoints").exists()]
    if started and not config.resume:
        raise FileExistsError(f"{run_dir} already holds checkpoints of {started}; pass resume=true to "
                              f"continue it, or train in a new folder")
    saved = run_dir / ".hydra" / "config.yaml"
    if fabric.global_rank == 0 and not saved.exists():     # hydra writes it; a direct call writes it here
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))
    ws = Workspace.build(config)
    fabric.print(f"market {ws.market.name}: {ws.market.n_instruments} instruments x {ws.market.n_bars} bars; "
                 f"train {ws.splits.train.n_bars}, validation {ws.splits.validation.n_bars}, "
                 f"test {ws.splits.test.n_bars}; {len(ws.features.instrument_names)} instrument features, "
                 f"warm-up {ws.warmup_bars} bars" + ("; CONTROL: next-bar returns leak into the "
                                                      "observations" if config.leak_next_return else ""))
    ctx = RunContext(ws, fabric, run_dir, config.resume)
    trained = train_policies(ctx)
    if fabric.global_rank != 0:
        return None
    if config.evaluation.walk_forward.enabled:
        run_walk_forward(ctx)
    metrics = evaluate(ctx, trained)
    print(f"\n{config.evaluation.split} split, {metrics['first_bar'][:10]} .. {metrics['last_bar'][:10]}, "
          f"after costs:\n{results_table(metrics)}")
    return metrics


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
