"""`python -m learners.bench`: our PPO, SAC and CQL side by side with Stable-Baselines3 on the
same tasks, hyperparameters and budgets; mean +/- std over seeds of the final deterministic
evaluation return (10 episodes) and training steps per second (gradient updates per second for
the offline rows). Writes `runs/bench/learners.json` and the table in `learners/BENCHMARKS.md`.

Tasks: `ppo_cartpole` (CartPole-v1, 100k steps), `ppo_pendulum` (Pendulum-v1, 100k steps), `sac`
(Pendulum-v1, 20k steps), `cql` (an offline Pendulum-v1 dataset collected here from a
medium-quality SAC policy and its replay; CQL against the behaviour policy and offline SAC).
Settings are rl-baselines3-zoo's for these tasks. One torch thread per run.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from buffers.offline import OfflineDataset, collect
from buffers.replay import Transitions
from learners.cql import CQLConfig, train_offline
from learners.envs import evaluate, make_vector_env
from learners.fabric import FabricConfig
from learners.ppo import PPOConfig, train_ppo
from learners.sac import SACConfig, train_sac

EVAL_EPISODES, EVAL_SEED = 10, 10_000
PPO_TASKS = {   # rl-baselines3-zoo's PPO settings (Pendulum without gSDE, which we do not implement)
    "ppo_cartpole": ("CartPole-v1", PPOConfig(total_timesteps=100_000, num_envs=8, num_steps=32, num_minibatches=1,
                                              update_epochs=20, gamma=0.98, gae_lambda=0.8, learning_rate=1e-3,
                                              ent_coef=0.0)),
    "ppo_pendulum": ("Pendulum-v1", PPOConfig(total_timesteps=100_000, num_envs=4, num_steps=1024, num_minibatches=64,
                                              update_epochs=10, gamma=0.9, gae_lambda=0.95, learning_rate=1e-3,
                                              ent_coef=0.0)),
}
SAC_CONFIG = SACConfig(total_timesteps=20_000, learning_starts=100, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)
CQL_BEHAVIOUR_STEPS, CQL_ROLLOUT_STEPS, CQL_UPDATES = 6_000, 20_000, 10_000


def _fabric(seed: int) -> FabricConfig:
    return FabricConfig(seed=seed, log_dir="", torch_threads=1)


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _sb3_act(model) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda obs: torch.as_tensor(model.predict(obs.numpy(), deterministic=True)[0])


def run_ppo(name: str, seed: int, scale: float) -> dict[str, tuple[float, float]]:
    """{impl: (evaluation return, steps per second)} for ours and SB3's PPO."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env_id, config = PPO_TASKS[name]
    config = replace(config, total_timesteps=int(config.total_timesteps * scale))
    ours = train_ppo(env_id, config, _fabric(seed))
    ours_return = evaluate(env_id, lambda obs: ours.policy.act(obs, deterministic=True)[0], EVAL_EPISODES, EVAL_SEED)
    batch_size = config.num_envs * config.num_steps // config.num_minibatches
    model = PPO("MlpPolicy", make_vec_env(env_id, n_envs=config.num_envs, seed=seed), n_steps=config.num_steps,
                batch_size=batch_size, n_epochs=config.update_epochs, gamma=config.gamma,
                gae_lambda=config.gae_lambda, clip_range=config.clip_coef, clip_range_vf=config.clip_coef,
                ent_coef=config.ent_coef, vf_coef=config.vf_coef, max_grad_norm=config.max_grad_norm,
                learning_rate=lambda remaining: remaining * config.learning_rate,   # = anneal_lr
                policy_kwargs={"optimizer_kwargs": {"eps": config.adam_eps}}, seed=seed, device="cpu")
    _, seconds = _timed(lambda: model.learn(config.total_timesteps))
    sb3_return = evaluate(env_id, _sb3_act(model), EVAL_EPISODES, EVAL_SEED)
    return {"ours": (ours_return.mean(), ours.steps_per_s),
            "sb3": (sb3_return.mean(), config.total_timesteps / seconds)}


def run_sac(seed: int, scale: float) -> dict[str, tuple[float, float]]:
    from stable_baselines3 import SAC

    config = replace(SAC_CONFIG, total_timesteps=int(SAC_CONFIG.total_timesteps * scale))
    ours = train_sac("Pendulum-v1", config, _fabric(seed))
    agent = ours.learner.agent
    ours_return = evaluate("Pendulum-v1", lambda obs: agent.act(obs, deterministic=True), EVAL_EPISODES, EVAL_SEED,
                           rescale_actions=True)
    model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=config.critic_lr, learning_starts=config.learning_starts,
                batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, buffer_size=config.buffer_size,
                seed=seed, device="cpu")
    _, seconds = _timed(lambda: model.learn(config.total_timesteps))
    sb3_return = evaluate("Pendulum-v1", _sb3_act(model), EVAL_EPISODES, EVAL_SEED)
    return {"ours": (ours_return.mean(), ours.steps_per_s),
            "sb3": (sb3_return.mean(), config.total_timesteps / seconds)}


def cql_dataset(seed: int, scale: float) -> OfflineDataset:
    """The replay of a briefly trained (medium-quality) SAC policy plus stochastic rollouts of
    that policy; the behaviour's return is the rollouts' mean episode return."""
    config = replace(SAC_CONFIG, total_timesteps=int(CQL_BEHAVIOUR_STEPS * scale))
    result = train_sac("Pendulum-v1", config, _fabric(seed))
    agent, replay = result.learner.agent, result.replay
    rollouts = collect(make_vector_env("Pendulum-v1", 4, seed, rescale_actions=True),
                       lambda obs: agent.act(obs), int(CQL_ROLLOUT_STEPS * scale) // 4, seed)
    stored = replay.storage.index(torch.arange(len(replay)))
    parts = [stored, rollouts.transitions]
    return OfflineDataset(Transitions(*(torch.cat([getattr(p, name) for p in parts])
                                        for name in ("obs", "actions", "rewards", "next_obs", "terminated"))),
                          rollouts.episode_returns)


def run_cql(seed: int, scale: float) -> dict[str, tuple[float, float]]:
    dataset = cql_dataset(seed, scale)
    config = CQLConfig(num_updates=int(CQL_UPDATES * scale))
    out = {"behaviour": (float(dataset.episode_returns.mean()), float("nan"))}
    for impl, conservative in (("ours-cql", True), ("ours-sac-offline", False)):
        result, seconds = _timed(lambda: train_offline(dataset, config, _fabric(seed), conservative=conservative))
        agent, mean, std = result.learner.agent, result.obs_mean, result.obs_std
        returns = evaluate("Pendulum-v1", lambda obs: agent.act((obs - mean) / std, deterministic=True),
                           EVAL_EPISODES, EVAL_SEED, rescale_actions=True)
        out[impl] = (returns.mean(), config.num_updates / seconds)
    return out


def record(rows_path: Path, rows: list[dict]) -> list[dict]:
    """Merge `rows` into the JSON file (replacing rows of the same algo, task and impl), under a lock."""
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with open(rows_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = json.loads(rows_path.read_text()) if rows_path.exists() else []
        keys = {(r["algo"], r["task"], r["impl"]) for r in rows}
        merged = [r for r in existing if (r["algo"], r["task"], r["impl"]) not in keys] + rows
        tmp = rows_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2))
        os.replace(tmp, rows_path)
    return merged


def table(rows: list[dict]) -> str:
    lines = ["| algo | task | impl | seeds | steps | return (mean +/- std) | steps/s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sps = "" if np.isnan(r["steps_per_s"]) else f"{r['steps_per_s']:.0f}"
        lines.append(f"| {r['algo']} | {r['task']} | {r['impl']} | {r['seeds']} | {r['steps']} | "
                     f"{r['return_mean']:.1f} +/- {r['return_std']:.1f} | {sps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", default="ppo_cartpole,ppo_pendulum,sac,cql")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiplies every budget")
    parser.add_argument("--out", default="runs/bench/learners.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = {"ppo_cartpole": ("ppo", "CartPole-v1", PPO_TASKS["ppo_cartpole"][1].total_timesteps),
             "ppo_pendulum": ("ppo", "Pendulum-v1", PPO_TASKS["ppo_pendulum"][1].total_timesteps),
             "sac": ("sac", "Pendulum-v1", SAC_CONFIG.total_timesteps),
             "cql": ("cql", "Pendulum-v1 offline", CQL_UPDATES)}
    for name in args.algos.split(","):
        algo, task, steps = tasks[name]
        per_seed: dict[str, list[tuple[float, float]]] = {}
        for seed in range(args.seeds):
            run = (run_sac(seed, args.steps_scale) if name == "sac" else run_cql(seed, args.steps_scale)
                   if name == "cql" else run_ppo(name, seed, args.steps_scale))
            for impl, value in run.items():
                per_seed.setdefault(impl, []).append(value)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v[0]:.1f} ({v[1]:.0f}/s)" for k, v in run.items()),
                  flush=True)
            # recorded after every seed, so an interrupted run still reports the seeds it finished
            rows = [{"algo": algo, "task": task, "impl": impl, "seeds": len(values),
                     "steps": int(steps * args.steps_scale), "return_mean": float(np.mean([v[0] for v in values])),
                     "return_std": float(np.std([v[0] for v in values], ddof=1)) if len(values) > 1 else 0.0,
                     "steps_per_s": float(np.mean([v[1] for v in values]))} for impl, values in per_seed.items()]
            merged = record(Path(args.out), rows)
        print(table(merged), flush=True)


if __name__ == "__main__":
    main()
