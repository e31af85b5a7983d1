"""`python -m learners.bench`: our PPO, SAC and CQL side by side with Stable-Baselines3 on the
same tasks, hyperparameters and budgets, in one run, seed by seed (ours, then SB3, so both see
the same load on a shared machine). Reports mean +/- std over seeds of the final deterministic
evaluation return (10 episodes) and training steps per second (gradient updates per second for
the offline rows), with the per-seed ratio of steps per second (ours / SB3). Writes
`runs/bench/learners.json` and the table in `learners/BENCHMARKS.md`.

Tasks:
- `ppo_cartpole`: CartPole-v1, 100k steps, rl-baselines3-zoo's settings (8 envs);
- `ppo_cartpole_64envs`: CartPole-v1, 100k steps, 64 envs and 16 gradient steps per 1024 env
  steps, where stepping the envs, not the gradient, is most of the work;
- `ppo_pendulum`: Pendulum-v1, 100k steps, the zoo's settings without gSDE (not implemented here);
- `sac`: Pendulum-v1, 20k steps, the zoo's settings;
- `cql`: an offline Pendulum-v1 dataset collected here: the replay of a SAC run stopped at a
  medium return (as D4RL's "medium" policies) plus stochastic rollouts of that policy. CQL
  against the behaviour policy's return and against plain SAC trained offline on the same data;
- `cql_narrow`: the same, on deterministic rollouts of the medium policy only (one action per
  state), where learning off-policy means extrapolating to unseen actions.
Our PPO steps gymnasium's batched CartPole (one numpy step for all envs) where SB3 steps envs
one by one; the `ours-sync` rows step the same SyncVectorEnv-style loop as SB3. One torch thread.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
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
# PPO: value clipping off and vf_coef 1.0 here, because SB3's value loss is the plain MSE (its
# clipped variant drops CleanRL's max with the unclipped loss) and ours is half the MSE: with SB3
# given vf_coef / 2 below, both minimise exactly the same objective.
ZOO_CARTPOLE = PPOConfig(total_timesteps=100_000, num_envs=8, num_steps=32, num_minibatches=1, update_epochs=20,
                         gamma=0.98, gae_lambda=0.8, learning_rate=1e-3, ent_coef=0.0, clip_vloss=False,
                         vf_coef=1.0, vectorization="vector_entry_point")
PPO_TASKS = {   # name: (env id, task label, config)
    "ppo_cartpole": ("CartPole-v1", "CartPole-v1, 8 envs", ZOO_CARTPOLE),
    "ppo_cartpole_64envs": ("CartPole-v1", "CartPole-v1, 64 envs",
                            replace(ZOO_CARTPOLE, num_envs=64, num_steps=16, num_minibatches=4, update_epochs=4)),
    "ppo_pendulum": ("Pendulum-v1", "Pendulum-v1, 4 envs",
                     PPOConfig(total_timesteps=100_000, num_envs=4, num_steps=1024, num_minibatches=64,
                               update_epochs=10, gamma=0.9, gae_lambda=0.95, learning_rate=1e-3, ent_coef=0.0,
                               clip_vloss=False, vf_coef=1.0)),
}
# SAC and CQL networks are 128 x 128 (the literature's 256 x 256 costs four times the compute):
# five seeds of both libraries then fit the bench's half-hour on two CPU cores.
SAC_CONFIG = SACConfig(total_timesteps=20_000, learning_starts=100, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3,
                       hidden=128)
CQL_BEHAVIOUR_RETURN = -700.0    # "medium": about half way from random (-1230) to expert (-150)
CQL_BEHAVIOUR_MAX_STEPS, CQL_ROLLOUT_STEPS = 10_000, 20_000
# CQL with the Lagrangian weight (target action gap 10, as Kumar et al. 2020): with the paper's
# fixed weight 5, this data's broad coverage (the replay) makes CQL stay close to the behaviour.
CQL_CONFIG = CQLConfig(sac=replace(SAC_CONFIG, actor_lr=1e-4), num_updates=5_000, lagrange=True,
                       target_action_gap=10.0)
TASKS = {**{name: ("ppo", label, config.total_timesteps) for name, (_, label, config) in PPO_TASKS.items()},
         "sac": ("sac", "Pendulum-v1", SAC_CONFIG.total_timesteps),
         "cql": ("cql", "Pendulum-v1 offline (medium + replay)", CQL_CONFIG.num_updates),
         "cql_narrow": ("cql", "Pendulum-v1 offline (medium, deterministic)", CQL_CONFIG.num_updates)}
BENCHMARKS_MD = Path(__file__).with_name("BENCHMARKS.md")


def _fabric(seed: int) -> FabricConfig:
    return FabricConfig(seed=seed, log_dir="", torch_threads=1)


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _sb3_act(model) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda obs: torch.as_tensor(model.predict(obs.numpy(), deterministic=True)[0])


def run_ppo(name: str, seed: int, scale: float) -> dict[str, tuple[float, float]]:
    """{impl: (evaluation return, steps per second)} for ours (its vector env and, where that is
    gymnasium's batched one, also SyncVectorEnv) and SB3's PPO."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env_id, _, config = PPO_TASKS[name]
    config = replace(config, total_timesteps=int(config.total_timesteps * scale))
    out = {}
    for impl, vectorization in {"ours": config.vectorization, "ours-sync": "sync"}.items():
        if impl == "ours-sync" and config.vectorization == "sync":
            continue
        ours = train_ppo(env_id, replace(config, vectorization=vectorization), _fabric(seed))
        returns = evaluate(env_id, lambda obs: ours.policy.act(obs, deterministic=True)[0], EVAL_EPISODES, EVAL_SEED)
        out[impl] = (returns.mean(), ours.steps_per_s)
    model = PPO("MlpPolicy", make_vec_env(env_id, n_envs=config.num_envs, seed=seed), n_steps=config.num_steps,
                batch_size=config.num_envs * config.num_steps // config.num_minibatches,
                n_epochs=config.update_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
                clip_range=config.clip_coef, clip_range_vf=None, ent_coef=config.ent_coef,
                vf_coef=config.vf_coef / 2,   # SB3's value loss is the MSE, ours half of it
                max_grad_norm=config.max_grad_norm,
                learning_rate=lambda remaining: remaining * config.learning_rate,   # = anneal_lr
                policy_kwargs={"optimizer_kwargs": {"eps": config.adam_eps}}, seed=seed, device="cpu")
    _, seconds = _timed(lambda: model.learn(config.total_timesteps))
    out["sb3"] = (evaluate(env_id, _sb3_act(model), EVAL_EPISODES, EVAL_SEED).mean(), config.total_timesteps / seconds)
    return out


def run_sac(seed: int, scale: float) -> dict[str, tuple[float, float]]:
    """{impl: (evaluation return, steps per second)} for ours and SB3's SAC on Pendulum-v1."""
    from stable_baselines3 import SAC

    config = replace(SAC_CONFIG, total_timesteps=int(SAC_CONFIG.total_timesteps * scale))
    ours = train_sac("Pendulum-v1", config, _fabric(seed))
    agent = ours.learner.agent
    ours_return = evaluate("Pendulum-v1", lambda obs: agent.act(obs, deterministic=True), EVAL_EPISODES, EVAL_SEED,
                           rescale_actions=True)
    model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=config.critic_lr, learning_starts=config.learning_starts,
                batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, buffer_size=config.buffer_size,
                policy_kwargs={"net_arch": [config.hidden] * 2}, seed=seed, device="cpu")
    _, seconds = _timed(lambda: model.learn(config.total_timesteps))
    sb3_return = evaluate("Pendulum-v1", _sb3_act(model), EVAL_EPISODES, EVAL_SEED)
    return {"ours": (ours_return.mean(), ours.steps_per_s),
            "sb3": (sb3_return.mean(), config.total_timesteps / seconds)}


def cql_dataset(seed: int, scale: float, narrow: bool = False) -> OfflineDataset:
    """The replay of a SAC run stopped at a medium return, plus stochastic rollouts of the policy
    it stopped with; the behaviour's return is the rollouts' mean episode return. `narrow`: only
    deterministic rollouts of that policy (one action per state, nothing else), the data on which
    off-policy learners extrapolate to actions they never saw."""
    config = replace(SAC_CONFIG, total_timesteps=int(CQL_BEHAVIOUR_MAX_STEPS * scale))
    result = train_sac("Pendulum-v1", config, _fabric(seed), stop_at_return=CQL_BEHAVIOUR_RETURN)
    agent, replay = result.learner.agent, result.replay
    rollouts = collect(make_vector_env("Pendulum-v1", 4, seed, rescale_actions=True),
                       lambda obs: agent.act(obs, deterministic=narrow), int(CQL_ROLLOUT_STEPS * scale) // 4, seed)
    if narrow:
        return rollouts
    parts = [replay.storage.index(torch.arange(len(replay))), rollouts.transitions]
    return OfflineDataset(Transitions(*(torch.cat([getattr(p, name) for p in parts])
                                        for name in ("obs", "actions", "rewards", "next_obs", "terminated"))),
                          rollouts.episode_returns)


def run_cql(seed: int, scale: float, narrow: bool = False) -> dict[str, tuple[float, float]]:
    """{impl: (evaluation return, updates per second)}: the behaviour, our CQL, our offline SAC."""
    dataset = cql_dataset(seed, scale, narrow)
    config = replace(CQL_CONFIG, num_updates=int(CQL_CONFIG.num_updates * scale))
    out = {"behaviour": (float(dataset.episode_returns.mean()), float("nan"))}
    for impl, conservative in (("ours-cql", True), ("ours-sac-offline", False)):
        result, seconds = _timed(lambda: train_offline(dataset, config, _fabric(seed), conservative=conservative))
        agent, mean, std = result.learner.agent, result.obs_mean, result.obs_std
        returns = evaluate("Pendulum-v1", lambda obs: agent.act((obs - mean) / std, deterministic=True),
                           EVAL_EPISODES, EVAL_SEED, rescale_actions=True)
        out[impl] = (returns.mean(), config.num_updates / seconds)
    return out


def summarise(name: str, per_seed: list[dict[str, tuple[float, float]]], scale: float) -> list[dict]:
    """One row per implementation: mean and std over seeds, and for ours the mean per-seed
    ratio of steps per second to SB3's (robust to the machine's load changing between seeds)."""
    algo, task, steps = TASKS[name]
    rows = []
    for impl in per_seed[0]:
        returns = np.array([run[impl][0] for run in per_seed])
        speeds = np.array([run[impl][1] for run in per_seed])
        row = {"algo": algo, "task": task, "impl": impl, "seeds": len(per_seed), "steps": int(steps * scale),
               "return_mean": float(returns.mean()),
               "return_std": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
               "steps_per_s": float(speeds.mean())}
        if impl != "sb3" and "sb3" in per_seed[0]:
            row["steps_per_s_ratio_vs_sb3"] = float(np.mean([run[impl][1] / run["sb3"][1] for run in per_seed]))
        rows.append(row)
    return rows


def record(rows_path: Path, rows: list[dict], markdown: Path | None = None) -> list[dict]:
    """Merge `rows` into the JSON file (replacing rows of the same algo, task and impl) and, if
    given, rewrite the markdown table from the merged rows; under a lock, so that bench runs
    in parallel (e.g. one per task) all land in both files."""
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    order = {label: i for i, (_, label, _) in enumerate(TASKS.values())}
    with open(rows_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = json.loads(rows_path.read_text()) if rows_path.exists() else []
        keys = {(r["algo"], r["task"], r["impl"]) for r in rows}
        merged = [r for r in existing if (r["algo"], r["task"], r["impl"]) not in keys] + rows
        merged.sort(key=lambda r: order.get(r["task"], len(order)))
        tmp = rows_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(merged, indent=2))
        os.replace(tmp, rows_path)
        if markdown is not None:
            write_markdown(merged, markdown)
    return merged


def table(rows: list[dict]) -> str:
    """Markdown table; `vs sb3` is ours minus SB3's mean return and one standard error of that
    difference (the target: not below minus one standard error)."""
    lines = ["| algo | task | impl | seeds | steps | return (mean +/- std) | vs sb3 (diff, 1 s.e.) | steps/s "
             "| steps/s ours / sb3 |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        sb3 = next((s for s in rows if s["task"] == r["task"] and s["impl"] == "sb3" and r["impl"] != "sb3"), None)
        versus = ""
        if sb3 is not None:
            se = np.sqrt(r["return_std"] ** 2 / r["seeds"] + sb3["return_std"] ** 2 / sb3["seeds"])
            versus = f"{r['return_mean'] - sb3['return_mean']:+.1f} ({se:.1f})"
        sps = "" if np.isnan(r["steps_per_s"]) else f"{r['steps_per_s']:.0f}"
        ratio = f"{r['steps_per_s_ratio_vs_sb3']:.2f}" if "steps_per_s_ratio_vs_sb3" in r else ""
        lines.append(f"| {r['algo']} | {r['task']} | {r['impl']} | {r['seeds']} | {r['steps']} | "
                     f"{r['return_mean']:.1f} +/- {r['return_std']:.1f} | {versus} | {sps} | {ratio} |")
    return "\n".join(lines)


def write_markdown(rows: list[dict], path: Path = BENCHMARKS_MD) -> None:
    """Replace the table between the `bench:table` markers of BENCHMARKS.md (the prose stays)."""
    text = path.read_text()
    generated = f"<!-- bench:table -->\n{table(rows)}\n<!-- /bench:table -->"
    updated, count = re.subn(r"<!-- bench:table -->.*<!-- /bench:table -->", lambda _: generated, text, flags=re.S)
    if count != 1:
        raise ValueError(f"{path}: expected one '<!-- bench:table -->' ... '<!-- /bench:table -->' block")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(updated)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiplies every budget (smoke runs)")
    parser.add_argument("--out", default="runs/bench/learners.json")
    parser.add_argument("--markdown", action=argparse.BooleanOptionalAction, default=True,
                        help="rewrite the table in learners/BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.algos.split(","):
        if name not in TASKS:
            raise SystemExit(f"unknown task '{name}'; tasks are {', '.join(TASKS)}")
        per_seed = []
        for seed in range(args.seeds):
            run = (run_sac(seed, args.steps_scale) if name == "sac"
                   else run_cql(seed, args.steps_scale, narrow=name == "cql_narrow") if name.startswith("cql")
                   else run_ppo(name, seed, args.steps_scale))
            per_seed.append(run)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v[0]:.1f} ({v[1]:.0f}/s)" for k, v in run.items()),
                  flush=True)
            # recorded after every seed, so an interrupted run still reports the seeds it finished
            merged = record(Path(args.out), summarise(name, per_seed, args.steps_scale),
                            BENCHMARKS_MD if args.markdown else None)
        print(table(merged), flush=True)


if __name__ == "__main__":
    main()
