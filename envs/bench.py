"""Simulator throughput, side by side in one run: `python -m envs.bench`.

Measures env-steps and instrument-steps per second, on one core, of
    numba          VecMarketEnv.step (kernel, observations, autoreset, info; copy=False)
    numba-copy     the same with copy=True (fresh arrays every step, gymnasium's default)
    numba-window   the same as numba with the rolling window view of the last W bars on
                   (env.window = W, default 64; synthetic8 only), its rate beside numba's
    numba-kernel   envs.kernels.step alone (step and observations)
    numpy          envs.reference.step: the same step and observations in plain numpy,
                   vectorized over envs (the same numbers; tests hold them together)
    gym-anytrading ForexEnv stepping its shipped EURUSD hourly data (a peer; one instrument)
on synthetic8 for E in {1, 64, 1024, 4096}, and on a 500-instrument factor universe. Each figure
is the best of a few timed bursts (the machine is shared). Prints a table and writes
runs/bench/envs.json, a list of rows, atomically.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from envs import kernels, reference
from envs.config import EnvConfig
from envs.market_data import MarketData
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import VecMarketEnv
from storage.atomic import write_json

BURST_SECONDS = 0.25
BURSTS = 3
OUTPUT = Path("runs/bench/envs.json")


def best_rate(step: Callable[[], object], restart: Callable[[], None], max_steps: int) -> float:
    """Best steps per second over BURSTS timed bursts of about BURST_SECONDS each."""
    restart()
    started = time.perf_counter()
    for _ in range(5):                                      # calibration (and warm-up)
        step()
    per_step = (time.perf_counter() - started) / 5
    steps = int(min(max(BURST_SECONDS / per_step, 10), max_steps))
    rates = []
    for _ in range(BURSTS):
        restart()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(steps / (time.perf_counter() - started))
    return max(rates)


def bytes_per_env(env: VecMarketEnv) -> int:
    """State, step outputs, observation row and window ring of one env (the tables are shared)."""
    arrays = [*env.state, *env.outputs, env.observation] + ([env._window.ring] if env.config.window else [])
    return int(sum(a.nbytes for a in arrays) // env.num_envs)


def simulator_rows(market: MarketData, E: int, meta_correlation: str, window: int = 0) -> list[dict]:
    """VecMarketEnv (both copy modes, and with a `window`-bar window view when > 0), then the
    kernel and the numpy step alone, at E envs."""
    N = market.n_instruments
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (E, N)).astype(np.float32)
    rows = []
    for impl, copy in (("numba", False), ("numba-copy", True)):
        env = VecMarketEnv(market, EnvConfig(meta_correlation=meta_correlation), E, seed=0, copy=copy)
        rows.append(row(impl, E, N, env_rate(env, actions), env))
    if window > 0:
        env = VecMarketEnv(market, EnvConfig(meta_correlation=meta_correlation, window=window), E, seed=0,
                           copy=False)
        rows.append(row("numba-window", E, N, env_rate(env, actions), env))
        rows[-1].update(window=window, window_over_numba=rows[-1]["env_steps_per_s"] / rows[0]["env_steps_per_s"])
    env = VecMarketEnv(market, EnvConfig(episode_length=0, meta_correlation=meta_correlation), E,
                       seed=0, copy=False)
    for impl, step in (("numba-kernel", kernels.step), ("numpy", reference.step)):
        rows.append(row(impl, E, N, step_rate(step, env, actions.astype(np.float64)), env))
    return rows


def env_rate(env: VecMarketEnv, actions: np.ndarray) -> float:
    return best_rate(lambda: env.step(actions), lambda: env.reset(seed=0), max_steps=100_000)


def step_rate(step: Callable, env: VecMarketEnv, targets: np.ndarray) -> float:
    """Steps per second of a bare step function over evaluation walks of `env`'s market."""
    return best_rate(
        lambda: step(targets, env.tables, env.costs, env.params, env.domain_index, env.state,
                     env.outputs, env.observation),
        lambda: env.reset(seed=0), max_steps=env.market.n_bars - env.config.warmup_bars - 1)


def row(impl: str, E: int, N: int, rate: float, env: VecMarketEnv | None = None) -> dict:
    out = {"impl": impl, "E": E, "N": N, "env_steps_per_s": rate * E,
           "instrument_steps_per_s": rate * E * N}
    if env is not None:
        out.update(observation_floats=env.layout.size, bytes_per_env=bytes_per_env(env),
                   shared_table_bytes=int(sum(a.nbytes for a in env.tables)))
    return out


def anytrading_row() -> dict | None:
    try:
        from gym_anytrading.datasets import FOREX_EURUSD_1H_ASK
        from gym_anytrading.envs import ForexEnv
    except ImportError:
        print("gym-anytrading is not installed (pip install -e '.[bench]'): its row is left out")
        return None
    data = FOREX_EURUSD_1H_ASK
    env = ForexEnv(df=data, window_size=10, frame_bound=(10, len(data)))
    actions = np.random.default_rng(0).integers(0, 2, size=len(data))
    position = [0]

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(int(actions[position[0]]))
        position[0] += 1
        if terminated or truncated:
            restart()

    def restart() -> None:
        env.reset(seed=0)
        position[0] = 0

    return row("gym-anytrading", 1, 1, best_rate(step, restart, max_steps=len(data) - 20))


def print_table(rows: list[dict]) -> None:
    print(f"{'impl':<15}{'E':>6}{'N':>5}{'env-steps/s':>14}{'instr-steps/s':>15}{'obs':>7}{'B/env':>9}"
          f"{'vs numba':>10}")
    for r in rows:
        ratio = f"{r['window_over_numba']:.0%}" if "window_over_numba" in r else ""
        print(f"{r['impl']:<15}{r['E']:>6}{r['N']:>5}{r['env_steps_per_s']:>14,.0f}"
              f"{r['instrument_steps_per_s']:>15,.0f}{r.get('observation_floats', ''):>7}"
              f"{r.get('bytes_per_env', ''):>9}{ratio:>10}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 64, 1024, 4096])
    parser.add_argument("--large-envs", type=int, nargs="+", default=[1, 64, 1024],
                        help="env counts for the 500-instrument universe")
    parser.add_argument("--window", type=int, default=64,
                        help="bars of the window view measured on synthetic8 (0: not measured)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}, "
          f"numba {numba.__version__}, one thread")
    rows = []
    with threadpool_limits(1):
        synthetic8 = generate(SyntheticConfig())
        for E in args.envs:
            rows += simulator_rows(synthetic8, E, "instruments", args.window)
        large = generate(SyntheticConfig(universe="factor", n_instruments=500))
        for E in args.large_envs:
            rows += simulator_rows(large, E, "domains")
        peer = anytrading_row()
        rows += [peer] if peer else []
    print_table(rows)
    write_json(args.output, rows, indent=1)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
