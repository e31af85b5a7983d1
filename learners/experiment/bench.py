"""`python -m learners.experiment.bench`: training throughput of every phase of the curriculum,
side by side in one run with Stable-Baselines3's PPO on the same `MarketEnv`.

Each phase runs its own loop (`learners.experiment.phases`: rollouts, updates, validation every
`curriculum.validate_every` rollouts and checkpoints included) for `--rollouts` rollouts on the
demo budget's market and settings at each `--num-envs`, from a fresh hierarchy, one torch thread;
env-steps/s is the env steps the phase spent over its wall time (and over the process's CPU time).
CQL pre-training is reported as gradient updates per second over the whole pre-training
(behaviour data, CQL updates of the three specialists, value distillation). Stable-Baselines3's
PPO (MlpPolicy, the same envs, rollout length, minibatches and epochs as phase 1's PPO) trains
on `MarketEnv`s of the same training window, features and risk overlay (one env per gymnasium
env, stepped by its DummyVecEnv). `--specialist` gives every domain that specialist type
(`hierarchy.specialist_type`; the sequence types read an env window of `--window` bars). Writes
`runs/bench/curriculum.json` and the curriculum table of `learners/BENCHMARKS.md`.

    python -m learners.experiment.bench --num-envs 64 256 --rollouts 10
    python -m learners.experiment.bench --phases phase1 --specialist lstm_cnn --window 16 --no-markdown
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from envs.vec_env import MarketEnv
from hierarchy.networks import SPECIALIST_TYPES
from learners.bench import BENCHMARKS_MD, replace_block
from learners.experiment.loop import RunContext
from learners.experiment.phases import phase1, phase2, phase3, pretrain_cql, train_flat
from learners.fabric import make_fabric
from learners.run.config import TrainConfig, register_configs
from learners.run.folder import RunFolder
from learners.run.workspace import Workspace
from risk.env_hook import RiskHook
from storage.atomic import write_json

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PHASES = ("cql", "phase1", "phase2", "phase3", "flat_ppo", "sb3_ppo")
OUTPUT = Path("runs/bench/curriculum.json")


def bench_config(num_envs: int, rollouts: int, cql_updates: int, seed: int, overrides: list[str]) -> TrainConfig:
    """The demo budget with `num_envs` envs, `rollouts` rollouts per phase and `cql_updates` CQL
    updates per specialist."""
    register_configs()
    steps = num_envs * 60 * rollouts
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=[
            "budget=demo", f"seed={seed}", f"budget.num_envs={num_envs}", f"budget.cql_steps={cql_updates}",
            f"budget.phase1_steps={steps}", f"budget.phase2_steps={steps}", f"budget.phase3_steps={steps}",
            "curriculum.rollout_bars=60", "curriculum.pretrain=none", "fabric.torch_threads=1", *overrides])
    return OmegaConf.to_object(cfg)


def sb3_ppo(ws: Workspace, seed: int) -> Callable[[], int]:
    """Stable-Baselines3 PPO with phase 1's PPO settings on MarketEnvs of the training window
    behind the risk overlay; returns the training call (it returns the env steps it took)."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    settings = ws.settings.phase1
    market, features = ws.window("train")

    def make_env() -> MarketEnv:
        hook = RiskHook(ws.config.risk, market, 1)
        env = MarketEnv(market, ws.settings.train_env, overlay=hook, **features)
        hook.bind(env.vec)
        return env

    ppo = settings.ppo
    envs = DummyVecEnv([make_env] * ppo.num_envs)
    batch_size = ppo.num_envs * ppo.num_steps // ppo.num_minibatches
    model = PPO("MlpPolicy", envs, n_steps=ppo.num_steps, batch_size=batch_size, n_epochs=ppo.update_epochs,
                learning_rate=ppo.learning_rate, gamma=ppo.gamma, gae_lambda=ppo.gae_lambda,
                clip_range=ppo.clip_coef, ent_coef=ppo.ent_coef, device="cpu", seed=seed)

    def learn() -> int:
        model.learn(total_timesteps=settings.env_steps)
        return int(model.num_timesteps)

    return learn


def measure(phase: str, config: TrainConfig, ws: Workspace, root: Path) -> dict:
    """One phase's throughput: wall and CPU seconds, and what it did (env steps or updates)."""
    fabric = make_fabric(config.fabric)
    ctx = RunContext(ws, fabric, RunFolder(root / phase), resume=False)
    torch.manual_seed(config.seed)
    system = ws.new_system()
    settings = ws.settings
    runs: dict[str, tuple[Callable[[], object], str, int]] = {
        "cql": (lambda: pretrain_cql(ctx, system), "updates", settings.cql.num_updates * len(system.domain_names)),
        "phase1": (lambda: phase1(ctx, system), "env_steps", settings.phase1.env_steps),
        "phase2": (lambda: phase2(ctx, system), "env_steps", settings.phase2.env_steps),
        "phase3": (lambda: phase3(ctx, system, None), "env_steps", settings.phase3.env_steps),
        "flat_ppo": (lambda: train_flat(ctx), "env_steps", settings.flat_ppo.env_steps),
    }
    if phase == "sb3_ppo":
        learn = sb3_ppo(ws, config.seed)
        run, unit, amount = learn, "env_steps", settings.phase1.env_steps
    else:
        run, unit, amount = runs[phase]
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"phase": phase, "specialist": config.hierarchy.specialist_type, "num_envs": config.budget.num_envs,
            "unit": unit, "amount": amount, "wall_s": wall, "per_s": amount / wall, "cpu_per_s": amount / cpu}


def table(rows: list[dict]) -> str:
    """Markdown: one row per phase, specialist type and number of envs."""
    lines = ["| phase | specialist | envs | what | amount | wall s | per s | per CPU s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['phase']} | {r['specialist']} | {r['num_envs']} | {r['unit'].replace('_', ' ')} | "
                     f"{r['amount']} | "
                     f"{r['wall_s']:.1f} | {r['per_s']:.0f} | {r['cpu_per_s']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rollouts", type=int, default=10, help="rollouts per phase")
    parser.add_argument("--cql-updates", type=int, default=200, help="CQL updates per specialist")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--specialist", default="mlp", choices=sorted(SPECIALIST_TYPES),
                        help="every domain's specialist type")
    parser.add_argument("--window", type=int, default=32, help="env.window of the sequence specialist types")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--markdown", action=argparse.BooleanOptionalAction, default=True,
                        help="rewrite the curriculum table in learners/BENCHMARKS.md")
    parser.add_argument("overrides", nargs="*", help="train config overrides, e.g. learner.ppo.update_epochs=2")
    args = parser.parse_args(argv)
    phases = args.phases.split(",")
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        raise SystemExit(f"unknown phases {unknown}; phases are {', '.join(PHASES)}")
    overrides = [f"hierarchy.specialist_type={args.specialist}", *args.overrides]
    if SPECIALIST_TYPES[args.specialist].reads_window:
        overrides.insert(1, f"env.window={args.window}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for num_envs in args.num_envs:
            config = bench_config(num_envs, args.rollouts, args.cql_updates, args.seed, overrides)
            ws = Workspace.build(config)
            for phase in phases:
                row = measure(phase, config, ws, Path(tmp) / f"envs{num_envs}")
                rows.append(row)
                print(f"{phase:9s} {args.specialist} E={num_envs:4d}: {row['per_s']:8.0f} "
                      f"{row['unit'].replace('_', '-')}/s ({row['cpu_per_s']:.0f} per CPU s, {row['wall_s']:.1f} s)",
                      flush=True)
    write_json(args.output, {"settings": {"rollouts": args.rollouts, "cql_updates": args.cql_updates,
                                          "seed": args.seed, "overrides": overrides,
                                          "torch_threads": 1}, "rows": rows})
    print(table(rows))
    if args.markdown:
        replace_block(BENCHMARKS_MD, "bench:curriculum", table(rows))


if __name__ == "__main__":
    main()
