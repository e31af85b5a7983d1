"""`python -m learners.bench`: our PPO, SAC and CQL side by side with their references on the
same tasks, hyperparameters and budgets, in one run, seed by seed (ours, then the reference, so
both see the same load on a shared machine): Stable-Baselines3 for PPO and SAC, d3rlpy's CQL
(run in its own Python environment, `--d3rlpy-python`) for CQL. Reports mean +/- std over seeds
of the final deterministic evaluation return (10 episodes) and of training steps per second
(gradient updates per second for the offline rows), wall-clock and per second of the process's
CPU time, with the per-seed ratios ours / reference of both (the CPU-time ratio does not move
with what else the machine runs). Writes `runs/bench/learners.json` and the table in
`learners/BENCHMARKS.md`.

Tasks:
- `ppo_cartpole`: CartPole-v1, 100k steps, rl-baselines3-zoo's settings (8 envs);
- `ppo_cartpole_64envs`: CartPole-v1, 100k steps, 64 envs of 16 steps per rollout, 4 minibatches
  of 256 and 5 epochs at a learning rate of 3e-3 (the zoo's settings otherwise): a vectorized
  configuration that solves the task within the budget in both libraries;
- `ppo_pendulum`: Pendulum-v1, 100k steps, the zoo's settings without gSDE (not implemented here);
- `sac`: Pendulum-v1, 20k steps, the zoo's settings;
- `cql_medium`, `cql_medium_replay`: offline Pendulum-v1 datasets collected here as D4RL's are:
  a SAC run stopped once its last five episodes average a medium return; "medium" is 100
  stochastic episodes of the policy it stopped with, "medium-replay" that run's replay. CQL
  against the behaviour's return, against plain SAC trained offline on the same data and
  settings, and against d3rlpy's CQL.
Our PPO steps gymnasium's batched CartPole (one numpy step for all envs) where SB3 steps envs
one by one; the `ours-sync` rows step the same SyncVectorEnv-style loop as SB3. One torch thread.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from buffers.offline import OfflineDataset, collect
from learners.cql import CQLConfig, train_offline
from learners.fabric import FabricConfig
from learners.gym_tasks import evaluate, make_vector_env
from learners.ppo import PPOConfig, train_ppo
from learners.sac import SACConfig, train_sac
from storage.atomic import write_json, write_text

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
                            replace(ZOO_CARTPOLE, num_envs=64, num_steps=16, num_minibatches=4, update_epochs=5,
                                    learning_rate=3e-3)),
    "ppo_pendulum": ("Pendulum-v1", "Pendulum-v1, 4 envs",
                     PPOConfig(total_timesteps=100_000, num_envs=4, num_steps=1024, num_minibatches=64,
                               update_epochs=10, gamma=0.9, gae_lambda=0.95, learning_rate=1e-3, ent_coef=0.0,
                               clip_vloss=False, vf_coef=1.0)),
}
# SAC and CQL networks are 128 x 128 (the literature's 256 x 256 costs four times the compute):
# five seeds of every library then fit the bench on two CPU cores.
SAC_CONFIG = SACConfig(total_timesteps=20_000, learning_starts=100, actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3,
                       hidden=128)
CQL_BEHAVIOUR_RETURN = -700.0    # "medium": about half way from random (-1230) to expert (-150)
CQL_BEHAVIOUR_MAX_STEPS, CQL_ROLLOUT_STEPS = 10_000, 20_000
# CQL(H) with the settings of Kumar et al. (2020) for the Gym tasks: fixed conservative weight 5,
# 10 sampled actions, critic learning rate 3e-4, actor and temperature 1e-4
CQL_CONFIG = CQLConfig(sac=replace(SAC_CONFIG, actor_lr=1e-4, critic_lr=3e-4, alpha_lr=1e-4), num_updates=5_000)
CQL_TASKS = {"cql_medium": ("Pendulum-v1 offline, medium", "medium"),
             "cql_medium_replay": ("Pendulum-v1 offline, medium-replay", "medium-replay")}
TASKS = {**{name: ("ppo", label, config.total_timesteps) for name, (_, label, config) in PPO_TASKS.items()},
         "sac": ("sac", "Pendulum-v1", SAC_CONFIG.total_timesteps),
         **{name: ("cql", label, CQL_CONFIG.num_updates) for name, (label, _) in CQL_TASKS.items()}}
# the reference of each algorithm, and our rows measured against it
REFERENCES = {"ppo": ("sb3", ("ours", "ours-sync")), "sac": ("sb3", ("ours",)), "cql": ("d3rlpy", ("ours-cql",))}
BENCHMARKS_MD = Path(__file__).with_name("BENCHMARKS.md")


class Run(NamedTuple):
    """One implementation on one seed: evaluation return, steps (or updates) per second of
    wall-clock time and of the process's CPU time."""

    ret: float
    per_s: float = float("nan")
    cpu_per_s: float = float("nan")


def _fabric(seed: int) -> FabricConfig:
    return FabricConfig(seed=seed, log_dir="", torch_threads=1)


def _timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """fn's result, and the wall-clock and CPU seconds it took."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _sb3_act(model) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda obs: torch.as_tensor(model.predict(obs.numpy(), deterministic=True)[0])


def run_ppo(name: str, seed: int, scale: float) -> dict[str, Run]:
    """Ours (its vector env and, where that is gymnasium's batched one, also SyncVectorEnv) and
    SB3's PPO, each trained (env and model construction included) and evaluated."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env_id, _, config = PPO_TASKS[name]
    config = replace(config, total_timesteps=int(config.total_timesteps * scale))
    out = {}
    for impl, vectorization in {"ours": config.vectorization, "ours-sync": "sync"}.items():
        if impl == "ours-sync" and config.vectorization == "sync":
            continue
        ours, wall, cpu = _timed(lambda: train_ppo(env_id, replace(config, vectorization=vectorization), _fabric(seed)))
        returns = evaluate(env_id, lambda obs: ours.policy.act(obs, deterministic=True)[0], EVAL_EPISODES, EVAL_SEED)
        out[impl] = Run(returns.mean(), ours.global_step / wall, ours.global_step / cpu)

    def sb3():
        model = PPO("MlpPolicy", make_vec_env(env_id, n_envs=config.num_envs, seed=seed), n_steps=config.num_steps,
                    batch_size=config.num_envs * config.num_steps // config.num_minibatches,
                    n_epochs=config.update_epochs, gamma=config.gamma, gae_lambda=config.gae_lambda,
                    clip_range=config.clip_coef, clip_range_vf=None, ent_coef=config.ent_coef,
                    vf_coef=config.vf_coef / 2,   # SB3's value loss is the MSE, ours half of it
                    max_grad_norm=config.max_grad_norm,
                    learning_rate=lambda remaining: remaining * config.learning_rate,   # = anneal_lr
                    policy_kwargs={"optimizer_kwargs": {"eps": config.adam_eps}}, seed=seed, device="cpu")
        return model.learn(config.total_timesteps)
    model, wall, cpu = _timed(sb3)
    out["sb3"] = Run(evaluate(env_id, _sb3_act(model), EVAL_EPISODES, EVAL_SEED).mean(),
                     model.num_timesteps / wall, model.num_timesteps / cpu)
    return out


def run_sac(seed: int, scale: float) -> dict[str, Run]:
    """Ours and SB3's SAC on Pendulum-v1."""
    from stable_baselines3 import SAC

    config = replace(SAC_CONFIG, total_timesteps=int(SAC_CONFIG.total_timesteps * scale))
    ours, wall, cpu = _timed(lambda: train_sac("Pendulum-v1", config, _fabric(seed)))
    agent = ours.learner.agent
    ours_return = evaluate("Pendulum-v1", lambda obs: agent.act(obs, deterministic=True), EVAL_EPISODES, EVAL_SEED,
                           rescale_actions=True)
    out = {"ours": Run(ours_return.mean(), config.total_timesteps / wall, config.total_timesteps / cpu)}

    def sb3():
        model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=config.critic_lr, learning_starts=config.learning_starts,
                    batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, buffer_size=config.buffer_size,
                    policy_kwargs={"net_arch": [config.hidden] * 2}, seed=seed, device="cpu")
        return model.learn(config.total_timesteps)
    model, wall, cpu = _timed(sb3)
    out["sb3"] = Run(evaluate("Pendulum-v1", _sb3_act(model), EVAL_EPISODES, EVAL_SEED).mean(),
                     model.num_timesteps / wall, model.num_timesteps / cpu)
    return out


def cql_dataset(seed: int, scale: float, kind: str) -> OfflineDataset:
    """D4RL's recipe on Pendulum-v1: SAC trained until its last five episodes average
    `CQL_BEHAVIOUR_RETURN`; "medium": stochastic rollouts of the policy it stopped with (the
    behaviour's return is theirs), "medium-replay": the replay of that run (the behaviour's
    return is the mean of the run's episodes)."""
    config = replace(SAC_CONFIG, total_timesteps=int(CQL_BEHAVIOUR_MAX_STEPS * scale))
    result = train_sac("Pendulum-v1", config, _fabric(seed), stop_at_return=CQL_BEHAVIOUR_RETURN)
    if kind == "medium-replay":
        replay = result.replay
        return OfflineDataset(replay.storage.index(torch.arange(len(replay))), np.asarray(result.episode_returns))
    if kind != "medium":
        raise ValueError(f"CQL dataset kind must be 'medium' or 'medium-replay', not '{kind}'")
    agent = result.learner.agent
    return collect(make_vector_env("Pendulum-v1", 4, seed, rescale_actions=True), lambda obs: agent.act(obs),
                   int(CQL_ROLLOUT_STEPS * scale) // 4, seed)


# d3rlpy's CQL, run by the d3rlpy environment's Python on a dataset saved by `OfflineDataset.save`:
# argv: dataset (.npz), output directory, settings (JSON). Trains on the rows as they are (each
# row's own next observation and termination), saves the greedy policy as TorchScript and prints
# the updates per second. d3rlpy's CQL is Lagrangian by construction: a fixed weight is its
# alpha learning rate 0 with alpha 1.
D3RLPY_WORKER = '''
import json, sys, time
import d3rlpy, numpy as np, torch
from d3rlpy.dataset import MDPDataset, Transition

data_path, out_dir, settings = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
torch.set_num_threads(1)
d3rlpy.seed(settings["seed"])
with np.load(data_path) as f:
    data = {k: f[k].astype(np.float32) for k in ("obs", "actions", "rewards", "next_obs", "terminated")}
m = len(data["rewards"])

def pick(episode, i):   # row i as stored (CQL never reads next_action)
    r = data["rewards"][i:i + 1]
    return Transition(observation=data["obs"][i], action=data["actions"][i], reward=r,
                      next_observation=data["next_obs"][i], next_action=data["actions"][i],
                      terminal=float(data["terminated"][i]), interval=1, rewards_to_go=r[:, None])

def pad(x):   # one episode of m + 1 rows, in which d3rlpy counts m transitions
    return np.concatenate([x, x[-1:]])

dataset = MDPDataset(pad(data["obs"]), pad(data["actions"]), pad(data["rewards"]), np.zeros(m + 1),
                     timeouts=np.eye(1, m + 1, m)[0], transition_picker=pick,
                     action_space=d3rlpy.constants.ActionSpace.CONTINUOUS)
encoder = d3rlpy.models.VectorEncoderFactory(hidden_units=[settings["hidden"]] * 2)
cql = d3rlpy.algos.CQLConfig(
    batch_size=settings["batch_size"], gamma=settings["gamma"], tau=settings["tau"],
    actor_learning_rate=settings["actor_lr"], critic_learning_rate=settings["critic_lr"],
    temp_learning_rate=settings["alpha_lr"], alpha_learning_rate=settings["alpha_prime_lr"],
    actor_encoder_factory=encoder, critic_encoder_factory=encoder, n_critics=2,
    conservative_weight=settings["cql_weight"], alpha_threshold=settings["target_action_gap"],
    n_action_samples=settings["cql_n_actions"]).create(device="cpu:0")
wall, cpu = time.perf_counter(), time.process_time()
cql.fit(dataset, n_steps=settings["num_updates"], n_steps_per_epoch=settings["num_updates"],
        show_progress=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
cql.save_policy(f"{out_dir}/policy.pt")
print(json.dumps({"per_s": settings["num_updates"] / wall, "cpu_per_s": settings["num_updates"] / cpu}))
'''


def run_d3rlpy(dataset: OfflineDataset, config: CQLConfig, seed: int, python: str) -> tuple[Callable, float, float]:
    """d3rlpy's CQL with `config`'s settings on `dataset` (observations already standardised):
    its greedy policy (a TorchScript module) and its updates per second (wall, CPU)."""
    settings = {"seed": seed, "hidden": config.sac.hidden, "batch_size": config.sac.batch_size,
                "gamma": config.sac.gamma, "tau": config.sac.tau, "actor_lr": config.sac.actor_lr,
                "critic_lr": config.sac.critic_lr, "alpha_lr": config.sac.alpha_lr,
                "alpha_prime_lr": config.alpha_prime_lr if config.lagrange else 0.0,
                "cql_weight": config.cql_weight, "target_action_gap": config.target_action_gap,
                "cql_n_actions": config.cql_n_actions, "num_updates": config.num_updates}
    with tempfile.TemporaryDirectory() as tmp:
        dataset.save(f"{tmp}/dataset.npz")
        done = subprocess.run([python, "-c", D3RLPY_WORKER, f"{tmp}/dataset.npz", tmp, json.dumps(settings)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"d3rlpy ({python}) failed:\n{done.stderr[-3000:]}")
        speed = json.loads(done.stdout.strip().splitlines()[-1])
        policy = torch.jit.load(f"{tmp}/policy.pt")
    return policy, speed["per_s"], speed["cpu_per_s"]


def run_cql(name: str, seed: int, scale: float, d3rlpy_python: str | None = None) -> dict[str, Run]:
    """The behaviour's return, our CQL, our offline SAC on the same data and settings, and
    (given its Python) d3rlpy's CQL; speeds in gradient updates per second."""
    dataset = cql_dataset(seed, scale, CQL_TASKS[name][1])
    config = replace(CQL_CONFIG, num_updates=int(CQL_CONFIG.num_updates * scale))
    out = {"behaviour": Run(float(dataset.episode_returns.mean()))}

    def evaluate_policy(act: Callable[[torch.Tensor], torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> float:
        """The return of `act`, a policy of standardised observations."""
        return evaluate("Pendulum-v1", lambda obs: act((obs - mean) / std), EVAL_EPISODES, EVAL_SEED,
                        rescale_actions=True).mean()

    for impl, conservative in (("ours-cql", True), ("ours-sac-offline", False)):
        result, wall, cpu = _timed(lambda: train_offline(dataset, config, _fabric(seed), conservative=conservative))
        agent = result.learner.agent
        out[impl] = Run(evaluate_policy(lambda obs: agent.act(obs, deterministic=True), result.obs_mean,
                                        result.obs_std), config.num_updates / wall, config.num_updates / cpu)
    if d3rlpy_python is not None:
        mean, std = dataset.normalization()
        policy, per_s, cpu_per_s = run_d3rlpy(dataset.normalized(mean, std), config, seed, d3rlpy_python)
        out["d3rlpy"] = Run(evaluate_policy(policy, mean, std), per_s, cpu_per_s)
    return out


def summarise(name: str, per_seed: list[dict[str, Run]], scale: float) -> list[dict]:
    """One row per implementation: mean and std over seeds of the return and the speeds, and
    for ours the mean per-seed ratios of its speeds to the reference's (robust to the machine's
    load changing between seeds)."""
    algo, task, steps = TASKS[name]
    reference, compared = REFERENCES[algo]
    rows = []
    for impl in per_seed[0]:
        returns = np.array([run[impl].ret for run in per_seed])
        row = {"algo": algo, "task": task, "impl": impl, "seeds": len(per_seed), "steps": int(steps * scale),
               "return_mean": float(returns.mean()),
               "return_std": float(returns.std(ddof=1)) if len(returns) > 1 else 0.0,
               "steps_per_s": float(np.mean([run[impl].per_s for run in per_seed])),
               "cpu_steps_per_s": float(np.mean([run[impl].cpu_per_s for run in per_seed]))}
        if impl in compared and reference in per_seed[0]:
            row["reference"] = reference
            for key, field in (("steps_per_s_ratio", "per_s"), ("cpu_steps_per_s_ratio", "cpu_per_s")):
                row[key] = float(np.mean([getattr(run[impl], field) / getattr(run[reference], field)
                                          for run in per_seed]))
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
        write_json(rows_path, merged)
        if markdown is not None:
            write_markdown(merged, markdown)
    return merged


def table(rows: list[dict]) -> str:
    """Markdown table; `vs ref.` is ours minus the reference's mean return and one standard error
    of that difference (the target: not below minus one standard error); speeds are means over
    seeds, the ratios means of the per-seed ratios."""
    lines = ["| algo | task | impl | seeds | steps | return (mean +/- std) | vs ref. (diff, 1 s.e.) | steps/s "
             "| steps/s ours / ref. | CPU steps/s ours / ref. |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = next((s for s in rows if s["task"] == r["task"] and s["impl"] == r.get("reference")), None)
        versus = ""
        if ref is not None:
            se = np.sqrt(r["return_std"] ** 2 / r["seeds"] + ref["return_std"] ** 2 / ref["seeds"])
            versus = f"{r['return_mean'] - ref['return_mean']:+.1f} ({se:.1f}) vs {ref['impl']}"
        sps = "" if np.isnan(r["steps_per_s"]) else f"{r['steps_per_s']:.0f}"
        ratios = [f"{r[key]:.2f}" if key in r else "" for key in ("steps_per_s_ratio", "cpu_steps_per_s_ratio")]
        lines.append(f"| {r['algo']} | {r['task']} | {r['impl']} | {r['seeds']} | {r['steps']} | "
                     f"{r['return_mean']:.1f} +/- {r['return_std']:.1f} | {versus} | {sps} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def replace_block(path: Path, marker: str, content: str) -> None:
    """Replace what stands between `<!-- marker -->` and `<!-- /marker -->` in a markdown file
    (the prose around it stays)."""
    text = path.read_text()
    opening, closing = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    pattern = re.escape(opening) + ".*" + re.escape(closing)
    updated, count = re.subn(pattern, lambda _: f"{opening}\n{content}\n{closing}", text, flags=re.S)
    if count != 1:
        raise ValueError(f"{path}: expected one '{opening}' ... '{closing}' block")
    write_text(path, updated)


def write_markdown(rows: list[dict], path: Path = BENCHMARKS_MD) -> None:
    """Replace the table between the `bench:table` markers of BENCHMARKS.md."""
    replace_block(path, "bench:table", table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="multiplies every budget (smoke runs)")
    parser.add_argument("--out", default="runs/bench/learners.json")
    parser.add_argument("--markdown", action=argparse.BooleanOptionalAction, default=True,
                        help="rewrite the table in learners/BENCHMARKS.md")
    parser.add_argument("--d3rlpy-python", default=os.environ.get("D3RLPY_PYTHON"),
                        help="the Python of an environment with d3rlpy, for its CQL rows (default: $D3RLPY_PYTHON; "
                             "without, no d3rlpy rows)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name in args.algos.split(","):
        if name not in TASKS:
            raise SystemExit(f"unknown task '{name}'; tasks are {', '.join(TASKS)}")
    if args.d3rlpy_python is None and any(name in CQL_TASKS for name in args.algos.split(",")):
        print("no --d3rlpy-python (or $D3RLPY_PYTHON): CQL without d3rlpy's rows", flush=True)
    for name in args.algos.split(","):
        per_seed = []
        for seed in range(args.seeds):
            run = (run_sac(seed, args.steps_scale) if name == "sac"
                   else run_cql(name, seed, args.steps_scale, args.d3rlpy_python) if name in CQL_TASKS
                   else run_ppo(name, seed, args.steps_scale))
            per_seed.append(run)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v.ret:.1f} ({v.per_s:.0f}/s, CPU {v.cpu_per_s:.0f}/s)"
                                                      for k, v in run.items()), flush=True)
            # recorded after every seed, so an interrupted run still reports the seeds it finished
            merged = record(Path(args.out), summarise(name, per_seed, args.steps_scale),
                            BENCHMARKS_MD if args.markdown else None)
        print(table(merged), flush=True)


if __name__ == "__main__":
    main()
