"""The numbers behind the report's tables, from groups of finished runs: one function per table,
each returning a DataFrame (rows: policies, regimes, windows or ablations; columns: metrics).

A policy's return series over seeds is a (T, S) frame, one column per seed, on the test split's
dates. Values across seeds are pooled by their mean, p-values by their median.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd

from envs.market_data import MarketData
from eval.backtest import COST_FACTORS, cost_stress, replay_schedule
from eval.baselines import BASELINES
from eval.inference import deflated_sharpe, paired_sharpe_tests, seed_aggregate
from eval.power import paired_table
from eval.runs import LEARNED_POLICIES, RunGroup
from eval.slices import domain_attribution, metrics_by_regime
from eval.stress import bootstrap_quantiles, var_backtest, window_metrics

SeedFrames = dict[str, pd.DataFrame]          # policy -> (T, S) returns, or (S, metrics) summaries


def policy_order(policies: list[str]) -> list[str]:
    """Learned policies first, then the baselines in `BASELINES` order, then any others."""
    known = [p for p in (*LEARNED_POLICIES, *BASELINES) if p in policies]
    return known + sorted(set(policies) - set(known))


def summaries(group: RunGroup, section: str = "policies") -> SeedFrames:
    """policy -> (seeds, metrics) frame of the runs' summary metrics ('policies': post-cost,
    'pre_cost'), for the policies every run of the group reports."""
    names = policy_order(list(group.runs[0].summaries(section)))
    for run in group.runs:
        missing = sorted(set(names) - set(run.summaries(section)))
        if missing:
            raise ValueError(f"{run.folder.metrics_file}: '{section}' lacks {missing}, "
                             f"which {group.runs[0].path} reports")
    return {p: pd.DataFrame([run.summaries(section)[p] for run in group.runs], index=group.seeds, dtype=float)
            for p in names}


def mean_and_std(frames: SeedFrames, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(policies, keys) means and sample stds (ddof 1; NaN for one seed) across seeds."""
    mean = pd.DataFrame({p: f.reindex(columns=keys).mean() for p, f in frames.items()}).T
    std = pd.DataFrame({p: f.reindex(columns=keys).std(ddof=1) for p, f in frames.items()}).T
    return mean, std


def returns_by_seed(group: RunGroup, policy: str, pre_cost: bool = False) -> pd.DataFrame:
    """(T, S) bar returns of `policy` in every run of the group; the runs must share dates."""
    columns = {run.seed: run.folder.frame(policy, "returns", pre_cost)["return"] for run in group.runs}
    joined = pd.concat(columns, axis=1)
    if joined.isna().any().any():
        seed = joined.columns[joined.isna().any()][0]
        raise ValueError(f"returns of '{policy}' in the run of seed {seed} "
                         f"({group.runs[group.seeds.index(seed)].path}) are not on the dates of the other runs")
    return joined


def var_backtest_table(series: SeedFrames, window: int, confidence: float) -> pd.DataFrame:
    """Per policy, over seeds: the mean exception rate of a rolling historical VaR and the
    median p-values of Kupiec's, Christoffersen's and the conditional-coverage tests."""
    rows = {}
    for policy, frame in series.items():
        tests = [var_backtest(frame[seed].to_numpy(), window, confidence) for seed in frame]
        rows[policy] = {"exception_rate": np.mean([t.n_exceptions / t.n_bars for t in tests]),
                        "expected_rate": tests[0].expected_rate, "bars": tests[0].n_bars,
                        "kupiec_p": np.median([t.kupiec.p_value for t in tests]),
                        "independence_p": np.median([t.independence.p_value for t in tests]),
                        "coverage_p": np.median([t.conditional_coverage.p_value for t in tests])}
    return pd.DataFrame.from_dict(rows, orient="index")


def regime_table(series: SeedFrames, labels: pd.Series, periods_per_year: float) -> pd.DataFrame:
    """(policy, regime) rows of `eval.slices.metrics_by_regime` with one labelling of the bars,
    averaged over seeds."""
    parts = {}
    for policy, frame in series.items():
        per_seed = [metrics_by_regime(frame[seed], labels, periods_per_year) for seed in frame]
        parts[policy] = pd.concat(per_seed).groupby(level=0, sort=False).mean()
    return pd.concat(parts)


def bootstrap_table(series: SeedFrames, n_resamples: int, seed: int, periods_per_year: float) -> pd.DataFrame:
    """(policy, metric) rows of `eval.stress.bootstrap_quantiles`, every seed's series pooled."""
    rng = np.random.default_rng(seed)
    return pd.concat({policy: bootstrap_quantiles([frame[s].to_numpy() for s in frame], n_resamples, rng,
                                                  periods_per_year=periods_per_year)
                      for policy, frame in series.items()})


def crisis_table(series: SeedFrames, windows: dict[str, tuple[str, str]],
                 periods_per_year: float) -> tuple[pd.DataFrame, list[str]]:
    """(policy, window) rows of `eval.stress.window_metrics` on the recorded returns inside each
    window, averaged over seeds, and the windows with fewer than 2 recorded bars."""
    rows, absent = {}, []
    for label, (first, last) in windows.items():
        for policy, frame in series.items():
            dates = frame.index.tz_convert("UTC").normalize()
            inside = frame[(dates >= pd.Timestamp(first, tz="UTC")) & (dates <= pd.Timestamp(last, tz="UTC"))]
            if len(inside) < 2:
                absent.append(label)
                break
            rows[(policy, label)] = pd.DataFrame(
                [window_metrics(inside[s].to_numpy(), periods_per_year) for s in inside]).mean()
    return pd.DataFrame.from_dict(rows, orient="index"), absent


def cost_stress_table(group: RunGroup, policies: list[str], market: MarketData,
                      factors: tuple[float, ...] = COST_FACTORS) -> pd.DataFrame:
    """(policy, metric) rows, one column per cost factor: Sharpe ratio and annual return of each
    policy's recorded trades replayed at scaled costs on `market`, the evaluated split with its
    history (no overlay, so the trades are the recorded ones), averaged over seeds."""
    cells: dict[tuple[str, str], dict[float, list[float]]] = {}
    for run in group.runs:
        config = run.config.env
        for policy in policies:
            schedule, first = replay_schedule(run.folder.frame(policy, "weights"),
                                              run.folder.frame(policy, "returns")["turnover"], market)
            walks = cost_stress(policy, market, dataclasses.replace(config, warmup_bars=first), schedule, factors)
            for factor, result in walks.items():
                stats = result.summary()
                for key in ("sharpe", "ann_return"):
                    cells.setdefault((policy, key), {}).setdefault(factor, []).append(stats[key])
    return pd.DataFrame({k: {f: float(np.mean(v)) for f, v in by_factor.items()} for k, by_factor in cells.items()}).T


def domain_table(group: RunGroup, policies: list[str]) -> pd.DataFrame:
    """(policy, domain) rows of `eval.slices.domain_attribution`, averaged over seeds, for the
    policies whose runs recorded instrument contributions."""
    parts = {}
    for policy in policies:
        if not all(run.folder.has_frame(policy, "contributions") for run in group.runs):
            continue
        per_seed = [domain_attribution(run.folder.frame(policy, "weights"), run.folder.frame(policy, "contributions"),
                                       run.evaluation.domains, run.evaluation.periods_per_year)
                    for run in group.runs]
        parts[policy] = pd.concat(per_seed).groupby(level=0, sort=False).mean()
    return pd.concat(parts) if parts else pd.DataFrame()


def significance_table(learned: pd.DataFrame, baselines: SeedFrames, n_resamples: int, seed: int,
                       periods_per_year: float) -> pd.DataFrame:
    """Per baseline: the learned policy's Sharpe difference (mean over seeds), the median Memmel
    and Ledoit-Wolf p-values, the mean Ledoit-Wolf interval bounds and the share of seeds whose
    Ledoit-Wolf p-value is below 5 %. Seeds pair a run's learned policy with its own baselines."""
    rng = np.random.default_rng(seed)
    per_seed = [paired_sharpe_tests(learned[s].to_numpy(), {b: f[s].to_numpy() for b, f in baselines.items()},
                                    n_resamples, rng, periods_per_year) for s in learned]
    stacked = pd.concat(per_seed)
    grouped = stacked.groupby(level=0, sort=False)
    table = grouped[["sharpe_difference", "ledoit_wolf_low", "ledoit_wolf_high"]].mean()
    table["memmel_p"] = grouped["memmel_p"].median()
    table["ledoit_wolf_p"] = grouped["ledoit_wolf_p"].median()
    table["share_significant"] = grouped["ledoit_wolf_p"].apply(lambda p: float(np.mean(p < 0.05)))
    return table


def sweep_returns(groups: list[RunGroup]) -> pd.DataFrame:
    """(T, R) returns of every run's learned policy, columns (ablation, seed): the sweep's trials."""
    columns = {(g.ablation, run.seed): run.folder.frame(g.policy, "returns")["return"]
               for g in groups for run in g.runs}
    joined = pd.concat(columns, axis=1)
    if joined.isna().any().any():
        ablation, seed = joined.columns[joined.isna().any()][0]
        raise ValueError(f"the run of ablation '{ablation}', seed {seed} is not on the dates of the sweep's other runs")
    return joined


def trials_table(sweep: pd.DataFrame, periods_per_year: float, n_trials: int | None = None) -> pd.DataFrame:
    """`eval.inference.deflated_sharpe` of every run of the sweep, indexed (ablation, seed), with
    `n_trials` trials (default: the sweep's runs)."""
    return deflated_sharpe(sweep.to_numpy(), periods_per_year, n_trials).set_axis(sweep.columns)


def ablation_table(groups: list[RunGroup], n_resamples: int, seed: int) -> pd.DataFrame:
    """Per group (ablation): its learned policy's Sharpe ratio over seeds (`seed_aggregate`),
    and the mean annual return and maximum drawdown."""
    rng = np.random.default_rng(seed)
    rows = {}
    for group in sorted(groups, key=lambda g: (g.ablation != "full", g.ablation)):
        frame = summaries(group)[group.policy]
        rows[group.ablation] = {"policy": group.policy, **seed_aggregate(frame["sharpe"].to_numpy(), n_resamples, rng),
                                "ann_return": frame["ann_return"].mean(), "max_drawdown": frame["max_drawdown"].mean()}
    return pd.DataFrame.from_dict(rows, orient="index")


def universe_walks(group: RunGroup) -> pd.DataFrame | None:
    """The group's test-universe walks stacked with a `seed` column (None when a run has none)."""
    frames = []
    for run in group.runs:
        walks = run.folder.universes()
        if walks is None:
            return None
        frames.append(walks.assign(seed=run.seed))
    return pd.concat(frames, ignore_index=True)


def universes_table(walks: pd.DataFrame, policies: list[str], reference: str,
                    bound: str | None = None) -> pd.DataFrame:
    """`eval.power.paired_table` of the Sharpe ratio over universes x seeds, with each policy's
    share of the `bound` policy's mean Sharpe (the cost-aware oracle) when it is present."""
    present = [p for p in policies if p in set(walks["policy"])]
    table = paired_table(walks, present, reference, "sharpe")
    table["ruined"] = walks.groupby("policy")["ruined"].mean().reindex(table.index)
    if bound is not None and bound in table.index:
        table["oracle_share"] = table["mean"] / table.at[bound, "mean"]
    return table


def universe_ablation_table(groups: list[RunGroup]) -> pd.DataFrame | None:
    """Per group (ablation): its learned policy's Sharpe over universes x seeds and the paired
    difference from the `full` row's learned policy (same universes, same seeds); None when a
    group has no universe walks or there is no `full` row."""
    walks = {g.ablation: universe_walks(g) for g in groups}
    if "full" not in walks or any(w is None for w in walks.values()):
        return None
    full = next(g for g in groups if g.ablation == "full").policy
    rows = {}
    for group in sorted(groups, key=lambda g: (g.ablation != "full", g.ablation)):
        mine = walks[group.ablation]
        mine = mine[mine["policy"] == group.policy].assign(policy=group.ablation)
        reference = walks["full"][walks["full"]["policy"] == full].assign(policy="full")
        if group.ablation != "full":
            mine = pd.concat([mine, reference[reference["seed"].isin(mine["seed"])]])
        table = paired_table(mine, [group.ablation], "full", "sharpe")
        rows[group.ablation] = {"policy": group.policy, **table.loc[group.ablation].to_dict()}
    return pd.DataFrame.from_dict(rows, orient="index")


def compute_table(groups: list[RunGroup]) -> pd.DataFrame:
    """Per group: mean training wall time of each phase and in all, env steps summed over the
    phases and env steps per second of wall time."""
    rows = {}
    for group in groups:
        training = [run.evaluation.training for run in group.runs]
        walls = pd.DataFrame([t.wall_s for t in training], dtype=float)
        steps = np.mean([sum(t.env_steps.values()) for t in training])
        total = walls.sum(axis=1, min_count=1).mean() if not walls.empty else np.nan
        rows[group.ablation] = {**walls.mean().to_dict(), "total_s": total, "env_steps": steps,
                                "env_steps_per_s": steps / total if total > 0 else np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


def bench_figures(folder: Path) -> dict[str, float]:
    """Headline benchmark figures from runs/bench/*.json (absent files give no entries)."""
    figures: dict[str, float] = {}
    hierarchy = folder / "hierarchy.json"
    if hierarchy.exists():
        data = json.loads(hierarchy.read_text())
        for key in ("p50_ms", "p99_ms", "weekly_meta_p50_ms", "weekly_meta_p99_ms", "batch_decisions_per_s"):
            if key in data:
                figures[f"decision_{key}"] = float(data[key])
    envs = folder / "envs.json"
    if envs.exists():
        rows = json.loads(envs.read_text())
        pick = lambda impl: next((r["env_steps_per_s"] for r in rows
                                  if r.get("impl") == impl and r.get("E") == 1024 and r.get("N") == 8), np.nan)
        figures["simulator_env_steps_per_s"] = float(pick("numba"))
        figures["simulator_speedup_vs_numpy"] = float(pick("numba") / pick("numpy"))
    learners = folder / "learners.json"
    if learners.exists():
        for row in json.loads(learners.read_text()):
            ratio = row.get("steps_per_s_ratio_vs_sb3")
            if ratio is not None:
                figures[f"{row['algo']}_{row['task']}_{row['impl']}_speed_vs_sb3"] = float(ratio)
    return figures


def _number(value: float | None) -> float:
    """A recorded figure; None is how JSON kept a NaN (e.g. the Sharpe ratio of a book that never traded)."""
    return float("nan") if value is None else float(value)


def walk_forward_table(group: RunGroup) -> pd.DataFrame | None:
    """Per walk-forward fold, averaged over the runs that recorded eval/walk_forward.json: its test
    window and each policy's out-of-sample Sharpe ratio; None when no run recorded one.

    walk_forward.json: {"folds": [{"test_start": date, "test_end": date,
                                   "policies": {name: {"sharpe": x, ...}}}, ...]}
    """
    records = [(run, record) for run in group.runs if (record := run.folder.walk_forward()) is not None]
    if not records:
        return None
    rows = []
    for run, record in records:
        for k, fold in enumerate(record.get("folds", [])):
            try:
                rows.append({"fold": k, "test_start": fold["test_start"], "test_end": fold["test_end"],
                             **{p: _number(m["sharpe"]) for p, m in fold["policies"].items()}})
            except (KeyError, TypeError) as error:
                raise ValueError(f"{run.folder.eval_dir / 'walk_forward.json'}: fold {k} lacks {error}") from None
    frame = pd.DataFrame(rows)
    windows = frame.groupby("fold")[["test_start", "test_end"]].first()
    sharpe = frame.drop(columns=["test_start", "test_end"]).groupby("fold").mean()
    return windows.join(sharpe[policy_order(list(sharpe.columns))])
