"""`python -m hierarchy.bench`: decision latency and throughput of `HierarchicalSystem` on CPU.

Latency: one env (synthetic8), the whole decision (meta-controller when due, every specialist,
composition, coordination) timed one call at a time after warm-up: p50 and p99 in milliseconds,
with the meta-controller acting every bar (the worst case) and at its weekly rhythm.
Throughput: decisions per second for a batch of 1024 envs.
Writes runs/bench/hierarchy.json atomically.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from storage.atomic import write_json

OUTPUT = Path("runs/bench/hierarchy.json")


def _system(num_envs: int, meta_period: int) -> tuple[VecMarketEnv, HierarchicalSystem]:
    market = generate(SyntheticConfig(seed=0))
    env = VecMarketEnv(market, EnvConfig(episode_length=0), num_envs=num_envs, seed=0)
    env.reset(seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig(meta_period=meta_period)).eval()
    return env, system


def latency_ms(meta_period: int, calls: int) -> np.ndarray:
    env, system = _system(1, meta_period)
    for _ in range(50):
        system.decide(env, deterministic=True)
    times = np.empty(calls)
    for k in range(calls):
        start = time.perf_counter()
        system.decide(env, deterministic=True)
        times[k] = time.perf_counter() - start
    return times * 1e3


def batch_rate(num_envs: int, calls: int) -> float:
    env, system = _system(num_envs, 5)
    system.decide(env, deterministic=True)
    start = time.perf_counter()
    for _ in range(calls):
        system.decide(env, deterministic=True)
    return num_envs * calls / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    every_bar = latency_ms(1, args.calls)
    weekly = latency_ms(5, args.calls)
    result = {
        "device": "cpu", "torch_threads": 1, "calls": args.calls,
        "p50_ms": float(np.percentile(every_bar, 50)), "p99_ms": float(np.percentile(every_bar, 99)),
        "weekly_meta_p50_ms": float(np.percentile(weekly, 50)),
        "weekly_meta_p99_ms": float(np.percentile(weekly, 99)),
        "batch_envs": 1024, "batch_decisions_per_s": batch_rate(1024, max(args.calls // 20, 20)),
    }
    print(f"one env, meta every bar : p50 {result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms")
    print(f"one env, meta weekly    : p50 {result['weekly_meta_p50_ms']:.3f} ms, "
          f"p99 {result['weekly_meta_p99_ms']:.3f} ms")
    print(f"batch of 1024 envs      : {result['batch_decisions_per_s']:,.0f} decisions/s")
    print(f"target p99 < 1 ms: {'met' if result['p99_ms'] < 1.0 else 'missed'}")
    write_json(args.output, result, indent=1)


if __name__ == "__main__":
    main()
