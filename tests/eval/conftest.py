"""A tiny finished sweep on disk, built from real computations: each run's policies are walked
through the synthetic market's test split by eval.backtest (the hierarchy and the flat policy
untrained, seeded by the run's seed; the baselines by eval.baselines), its regimes detected by
the HMM fitted on the training split, and its folder written by the writers training runs use
(`RunFolder.write_config`, `eval.backtest.write_evaluation`)."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from omegaconf import OmegaConf

from envs.config import EnvConfig
from envs.loading import MarketConfig, load_market, split_market
from envs.vec_env import VecMarketEnv
from eval.backtest import run, run_schedule, run_system, scale_costs, write_evaluation
from eval.baselines import BaselineConfig, baseline_weights
from features.regimes import RegimeDetector, regime_inputs
from hierarchy.networks import FlatPolicy
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from learners.run.config import TrainConfig
from learners.run.folder import RunFolder, TrainingRecord

SWEEP_BASELINES = ("equal_weight", "buy_and_hold", "min_variance", "trend_following", "random", "oracle")
ABLATIONS = ("full", "no_meta", "flat_ppo")
SEEDS = (0, 1)


def train_config(ablation: str, seed: int) -> TrainConfig:
    """The resolved TrainConfig of one run of the sweep."""
    config = OmegaConf.structured(TrainConfig)
    overrides = {"experiment": "tiny", "seed": seed, "ablation.name": ablation, "ablation.meta": ablation != "no_meta",
                 "ablation.policy": "flat" if ablation == "flat_ppo" else "hierarchy",
                 "budget.name": "smoke",
                 "market.synthetic.years": 3.0, "market.synthetic.seed": 4,
                 "market.split.train_fraction": 0.5, "market.split.validation_fraction": 0.1}
    for key, value in overrides.items():
        OmegaConf.update(config, key, value)
    return OmegaConf.to_object(config)


def _flat_decide(market, seed: int):
    probe = VecMarketEnv(market, EnvConfig(), num_envs=1, seed=0)
    torch.manual_seed(seed)
    policy = FlatPolicy(probe.observation.shape[1], market.n_instruments).eval()
    scale = 2.0 / market.n_instruments

    @torch.no_grad()
    def decide(env: VecMarketEnv) -> np.ndarray:
        mean, _ = policy(torch.as_tensor(env.observation))
        return scale * torch.tanh(mean).double().numpy()
    return decide


def _learned(ablation: str, seed: int, market, config: EnvConfig, decision_log: Path, cost_factor: float):
    name = "flat_ppo" if ablation == "flat_ppo" else "hierarchy"
    walked = scale_costs(market, cost_factor)
    if name == "flat_ppo":
        return run(name, walked, config, _flat_decide(market, seed))
    torch.manual_seed(seed)
    system = HierarchicalSystem(VecMarketEnv(market, config, num_envs=4, seed=0), HierarchyConfig(meta_period=5))
    system.fixed_meta = ablation == "no_meta"
    return run_system(name, walked, config, system, decision_log=decision_log if cost_factor == 1.0 else None)


@cache
def _splits(market: str):
    """The market of a run's `market` config (as YAML) and its splits."""
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(MarketConfig), yaml.safe_load(market)))
    return split_market(load_market(config), config.split)


def _market_key(config: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config.market))


@cache
def _schedule(name: str, seed: int, market_key: str) -> np.ndarray:
    """A baseline's schedule on the test split (the same in every run but for the random one's seed)."""
    market = _splits(market_key).test
    return baseline_weights(name, market, BaselineConfig(lookback=60, min_history=20),
                            np.random.default_rng(seed), start=EnvConfig().warmup_bars)


@cache
def _regimes(market_key: str) -> pd.DataFrame:
    """Filtered regime probabilities on the test split from the HMM fitted on the training split."""
    splits = _splits(market_key)
    detector = RegimeDetector(3, 3, n_init=1).fit(regime_inputs(splits.train, 20)[0])
    probs = detector.transform(regime_inputs(splits.test, 20)[0])
    return pd.DataFrame(probs, index=splits.test.timestamps, columns=[f"regime_{k}" for k in range(probs.shape[1])])


def _universe_walks(ablation: str, seed: int) -> pd.DataFrame:
    """Made-up walks on 4 test universes: a universe effect shared by every policy, a seed effect
    for the learned policy and the random baseline, a fixed edge per policy."""
    learned = "flat_ppo" if ablation == "flat_ppo" else "hierarchy"
    rows = []
    for universe in range(4):
        shared = np.random.default_rng([universe]).normal()
        for k, policy in enumerate((learned, "oracle_cost_aware", *SWEEP_BASELINES)):
            noise = np.random.default_rng([universe, k, seed if policy in (learned, "random") else 0]).normal(0, 0.2)
            edge = {"hierarchy": 0.3, "flat_ppo": 0.1, "oracle_cost_aware": 1.0}.get(policy, 0.0)
            rows.append({"universe": universe, "market_seed": 1000 + universe, "policy": policy,
                         "sharpe": shared + edge + noise, "ann_return": 0.0, "ann_vol": 0.1, "max_drawdown": -0.1,
                         "turnover": 1.0, "costs": 0.001, "bars": 100, "ruined": False})
    return pd.DataFrame(rows)


def build_run(folder: Path, ablation: str, seed: int) -> Path:
    """One finished run folder of the tiny sweep."""
    started = time.perf_counter()
    config, run = train_config(ablation, seed), RunFolder(folder)
    run.write_config(config)
    market_key = _market_key(config)
    market, env_config = _splits(market_key).test, EnvConfig()
    walls = {"phase1": time.perf_counter() - started}
    results, pre_cost = [], []
    for factor, out in ((1.0, results), (0.0, pre_cost)):
        out.append(_learned(ablation, seed, market, env_config, run.decisions_file, factor))
        for name in SWEEP_BASELINES:
            schedule = _schedule(name, seed if name == "random" else 0, market_key)
            out.append(run_schedule(name, scale_costs(market, factor), env_config, schedule))
    walls["phase2"] = time.perf_counter() - started - walls["phase1"]
    regimes = _regimes(market_key)
    walls["phase3"] = time.perf_counter() - started - walls["phase1"] - walls["phase2"]
    steps = sum(len(r.returns) for r in results + pre_cost)
    training = TrainingRecord(walls, dict.fromkeys(walls, steps // 3))
    write_evaluation(run, config, "test", market, results, pre_cost, training, regimes, _universe_walks(ablation, seed))
    return folder


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """runs/tiny/multirun_<stamp>/ablation=<a>,seed=<s>/ for the ablations and seeds above."""
    root = tmp_path_factory.mktemp("runs") / "tiny" / "multirun_2024-01-01_00-00-00"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                   # tiny networks: threads only add overhead
    try:
        for ablation in ABLATIONS:
            for seed in SEEDS:
                build_run(root / f"ablation={ablation},seed={seed}", ablation, seed)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="session")
def tiny_report(tiny_sweep, tmp_path_factory) -> tuple[Path, str]:
    """`python -m eval.report` on the tiny sweep (small resample counts), with the hierarchy's
    benchmark measured for the latency table: the output folder and what it printed."""
    import contextlib
    import io

    from eval.report import ReportConfig, report
    from hierarchy.bench import main as bench

    bench_dir = tmp_path_factory.mktemp("bench")
    bench(["--calls", "30", "--output", str(bench_dir / "hierarchy.json")])
    out = tmp_path_factory.mktemp("paper")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report(ReportConfig(runs=str(tiny_sweep), out=str(out), bench=str(bench_dir), resamples=200, crash_paths=2,
                            crash_length=30, var_window=40,
                            crash_policies=["equal_weight", "trend_following", "oracle"]))
    return out, printed.getvalue()
