"""`python -m eval.report runs=runs/<sweep-or-experiment>`: the paper's tables, figures and macros
from finished runs.

    python -m eval.report runs=runs/paper/multirun_<stamp> resamples=1000 crash_policies=[equal_weight,oracle]

Finds every finished run under the folder (`eval.runs`), groups them into rows by ablation,
market and budget (seeds pooled; runs that differ in anything else are refused), prints which
runs it used, and writes, for one market and budget (the "setting"; choose with market=... and
budget=... when the folder holds several):

    <out>/tables/<name>.tex    booktabs tabulars, one per entry of TABLES, \\input by the paper
    <out>/tables/macros.tex    \\newcommand definitions of every number the text quotes
    <out>/figures/<name>.pdf   one per entry of FIGURES

and prints the main table. The row of ablation 'full' (else the first ablation) is the primary
row: its learned policy and the baselines its runs evaluated fill the result tables; every row of
the setting fills the ablation, trial and compute tables. A table whose inputs are missing (no
decision log, no walk-forward results, a market that cannot be rebuilt) says so instead of
failing the report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from envs.config import EnvConfig
from envs.market_data import MarketData
from eval import figures, latex, probes, results
from eval.backtest import COST_FACTORS, Policy, learned_policy
from eval.baselines import BASELINES, BaselineConfig, baseline_policy
from eval.inference import backtest_overfitting
from eval.latex import Macros, escape, macro_name, mean_std, number
from eval.oracle import EVALUATED_BASELINES
from eval.power import crossed_mean
from eval.runs import Run, RunGroup, find_runs, group_runs
from eval.slices import regime_labels
from eval.stress import CRISIS_WINDOWS, crash_scenarios, crash_stress
from learners.run.restore import LEARNED_POLICIES, restore
from learners.run.sweep import SWEEP_FILE, SweepJob, missing_jobs, search_trials
from storage.atomic import write_text

TABLES: tuple[str, ...] = ("main", "precost", "risk", "var_backtests", "regimes_detected", "regimes_true",
                           "bootstrap", "crash", "crisis", "costs", "ablations", "domains", "significance",
                           "universes", "ablations_universes", "probes",
                           "overfitting", "compute", "latency", "walk_forward", "runs")
FIGURES: tuple[str, ...] = ("equity", "drawdowns", "returns", "allocations", "correlation", "costs", "probes")

NAMES = {"hierarchy": "Hierarchy (ours)", "flat_ppo": "Flat PPO", "equal_weight": "Equal weight",
         "buy_and_hold": "Buy and hold", "sixty_forty": "60/40", "min_variance": "Min. variance",
         "max_sharpe": "Max. Sharpe", "risk_parity": "Risk parity", "hrp": "HRP",
         "black_litterman": "Black-Litterman", "trend_following": "Trend following", "random": "Random",
         "oracle": "Oracle (bound)", "oracle_cost_aware": "Cost-aware oracle (bound)",
         "full": "Full system", "no_meta": "No meta-controller",
         "cql": "With CQL pre-training", "no_sentiment": "No sentiment", "no_regime": "No regime features",
         "no_risk_penalty": "No risk penalties", "consensus": "Consensus coordinator",
         "mappo": "MAPPO (central critic)", "risk_agent": "Learned risk agent",
         "multi_timeframe": "Multiple timeframes", "transformer_specialists": "Transformer specialists",
         "lstm_cnn_specialists": "LSTM-CNN specialists", "tactical_specialists": "Tactical specialists"}

# the ablation config group's options, every one of which the paper's text names
ABLATIONS: tuple[str, ...] = ("full", "no_meta", "cql", "no_sentiment", "no_regime", "no_risk_penalty", "flat_ppo",
                              "consensus", "mappo", "risk_agent", "multi_timeframe", "transformer_specialists",
                              "lstm_cnn_specialists", "tactical_specialists")

# settings the method section quotes, per config node: (key, decimals, scale)
CONFIG_MACROS: dict[str, tuple[tuple[str, int, float], ...]] = {
    "hierarchy": (("meta_period", 0, 1.0), ("max_leverage", 1, 1.0)),
    "env": (("initial_equity", 0, 1.0), ("warmup_bars", 0, 1.0), ("episode_length", 0, 1.0),
            ("drawdown_penalty", 2, 1.0), ("turnover_penalty", 2, 1.0), ("tail_penalty", 2, 1.0),
            ("tail_sigmas", 1, 1.0), ("max_leverage", 1, 1.0)),
    "risk": (("max_var", 1, 100.0), ("var_confidence", 0, 100.0), ("max_gross_leverage", 1, 1.0),
             ("max_class_share", 0, 100.0), ("max_correlation_exposure", 2, 1.0),
             ("max_margin_usage", 0, 100.0), ("max_drawdown", 0, 100.0), ("kill_switch_cooldown", 0, 1.0)),
}
BUDGET_MACROS = ("num_envs", "cql_steps", "phase1_steps", "phase2_steps", "phase3_steps")

MISSING_CELLS = [latex.MISSING] * 3          # a paired difference of a policy from itself

# (metric, header, decimals, scale): returns, volatility, drawdown and VaR in percent
MAIN_COLUMNS = (("sharpe", "Sharpe", 2, 1.0), ("ann_return", r"Return (\%)", 1, 100.0),
                ("ann_vol", r"Vol. (\%)", 1, 100.0), ("max_drawdown", r"Max DD (\%)", 1, 100.0),
                ("calmar", "Calmar", 2, 1.0), ("turnover", "Turnover", 1, 1.0), ("costs", r"Costs (\%)", 2, 100.0))
RISK_COLUMNS = (("var", r"VaR$_{95}$ (\%)", 2, 100.0), ("cvar", r"CVaR$_{95}$ (\%)", 2, 100.0),
                ("max_drawdown", r"Max DD (\%)", 1, 100.0), ("max_drawdown_duration", "DD bars", 0, 1.0),
                ("sortino", "Sortino", 2, 1.0), ("hit_rate", r"Hit (\%)", 1, 100.0), ("win_loss", "Win/loss", 2, 1.0))


def display(name: str) -> str:
    return escape(NAMES.get(name, name))


@dataclass
class ReportConfig:
    """What the report reads, computes and where it writes (`configs/eval/report.yaml`; every field
    is a command-line key)."""

    runs: str = MISSING                 # a folder of finished runs (a sweep or an experiment)
    out: str = "paper"
    bench: str = "runs/bench"
    resamples: int = 10_000             # bootstrap resamples: Monte Carlo, significance, seed intervals
    crash_paths: int = 20
    crash_years: float = 2.0            # length of each crash path
    crash_start: int = 300              # first bar of its forced crash window
    crash_length: int = 60              # bars of each forced crash window
    crash_policies: list[str] = field(default_factory=lambda: list(BASELINES))   # baselines on the crash paths
    var_window: int = 125               # bars of history behind each rolling VaR forecast
    var_confidence: float = 0.95
    seed: int = 0
    market: str | None = None           # the setting, when the folder holds several
    budget: str | None = None
    # hyperparameter-search folders whose trials count in the deflated Sharpe ratio, besides those under `runs`
    searches: list[str] = field(default_factory=list)


ConfigStore.instance().store(name="report_schema", node=ReportConfig)


def learned_crash_policy(run: Run, fit_end: int) -> tuple[Policy, Callable[[MarketData], dict], EnvConfig]:
    """A run's learned policy (its last phase's best checkpoint) for new crash paths, its env
    arguments on such a path (features computed with the run's settings, the regime HMM fitted
    before the crash window) and the env config of its walks (the run's warm-up)."""
    ws, policies = restore(run.folder.final_checkpoint())
    built: dict[int, tuple[MarketData, dict]] = {}      # per market: every policy walks it

    def env_kwargs(market: MarketData) -> dict:
        if id(market) not in built:
            built[id(market)] = market, ws.features_for(market, fit_end)
        return built[id(market)][1]

    return learned_policy(ws, policies), env_kwargs, ws.settings.eval_env


def select_setting(groups: list[RunGroup], market: str | None, budget: str | None) -> list[RunGroup]:
    """The groups of the one (market, budget) the options name, or the only one there is."""
    chosen = [g for g in groups if market in (None, g.market) and budget in (None, g.budget)]
    settings = sorted({g.setting for g in chosen})
    if len(settings) != 1:
        found = sorted({g.setting for g in groups})
        raise ValueError(f"{'no' if not settings else len(settings)} settings match market={market!r}, "
                         f"budget={budget!r}; the runs hold {found}: pass market=... and budget=...")
    return chosen


class Report:
    """Tables, macros and figures of one setting's groups."""

    def __init__(self, groups: list[RunGroup], options: ReportConfig) -> None:
        self.groups, self.options = groups, options
        self.primary = next((g for g in groups if g.ablation == "full"), groups[0])
        self.macros = Macros()
        self.tables, self.figures = Path(options.out) / "tables", Path(options.out) / "figures"
        self.learned = self.primary.policy
        self.baselines = [p for p in results.policy_order(self.primary.runs[0].policies) if p != self.learned]
        meta = self.primary.metadata
        self.periods = float(meta["periods_per_year"])
        self.post = results.summaries(self.primary)
        self.pre = results.summaries(self.primary, "pre_cost")
        self.series = {p: results.returns_by_seed(self.primary, p) for p in self.post}
        for group in groups:                      # the other learned policies (flat PPO) as rows
            if group is not self.primary and group.policy not in self.post:
                self.post[group.policy] = results.summaries(group)[group.policy]
                self.pre[group.policy] = results.summaries(group, "pre_cost")[group.policy]
                self.series[group.policy] = results.returns_by_seed(group, group.policy)
        self.history, self.market, self.market_problem = self._rebuild_market()
        self.cost_stress: pd.DataFrame | None = None
        self.leaked = [g.ablation for g in groups if any(r.evaluation.leak_next_return for r in g.runs)]
        self.missing = missing_runs(options.runs)
        self.searches = {folder: trials for root in [options.runs, *options.searches]
                         for folder, trials in search_trials(root).items()}
        if self.leaked:
            print(f"warning: rows {self.leaked} are control runs that see the next bar's return "
                  "(leak_next_return): never a strategy")

    def _rebuild_market(self) -> tuple[MarketData | None, MarketData | None, str]:
        """The evaluated split with its history, and the split alone (None, None and the reason
        when the market cannot be rebuilt, e.g. the user's files have moved)."""
        try:
            return *self.primary.runs[0].evaluation_market(), ""
        except (OSError, ImportError, ValueError, KeyError) as error:
            print(f"warning: the evaluated market cannot be rebuilt ({error}); tables that need it say so")
            return None, None, f"the evaluated market could not be rebuilt: {error}"

    # ------------------------------------------------------------------ output
    def table(self, name: str, text: str) -> None:
        write_text(self.tables / f"{name}.tex", text)

    def define(self, *parts: str, value: str) -> None:
        self.macros.define(macro_name(*parts), value)

    def write(self) -> None:
        steps: dict[str, Callable[[], None]] = {
            "setting": self.setting_macros, "config": self.config_macros, "main": self.main_table,
            "precost": self.precost_table,
            "risk": self.risk_tables, "regimes": self.regime_tables, "bootstrap": self.bootstrap_table,
            "crash": self.crash_table, "crisis": self.crisis_table, "costs": self.cost_table,
            "ablations": self.ablation_table, "domains": self.domain_table,
            "significance": self.significance_table, "universes": self.universes_tables, "probes": self.probes,
            "overfitting": self.overfitting_table,
            "compute": self.compute_tables, "walk_forward": self.walk_forward_table, "runs": self.runs_table,
            "figures": self.write_figures}
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            print(f"  {name:<13} {time.perf_counter() - started:6.1f} s")
        write_text(self.tables / "macros.tex", self.macros.render())

    # ------------------------------------------------------------------ tables
    def setting_macros(self) -> None:
        index = next(iter(self.series.values())).index
        meta = self.primary.metadata
        for parts, value in ((("market", "name"), escape(meta["market"])),
                             (("budget", "name"), escape(self.primary.budget)),
                             (("num", "seeds"), str(len(self.primary.runs))),
                             (("num", "runs"), str(sum(len(g.runs) for g in self.groups))),
                             (("num", "ablations"), str(len(self.groups))),
                             (("num", "instruments"), str(len(meta["symbols"]))),
                             (("num", "domains"), str(len(meta["domains"]))),
                             (("domain", "names"), escape(", ".join(meta["domains"]))),
                             (("test", "start"), index[0].date().isoformat()),
                             (("test", "end"), index[-1].date().isoformat()), (("test", "bars"), str(len(index))),
                             (("bars", "per", "year"), f"{self.periods:g}"),
                             (("resamples",), number(self.options.resamples, 0)),
                             (("var", "window"), str(self.options.var_window)),
                             (("var", "confidence"), f"{100 * self.options.var_confidence:g}"),
                             (("learned", "name"), display(self.learned))):
            self.define(*parts, value=value)
        self.define("cost", "factors", value=", ".join(f"{f:g}" for f in COST_FACTORS))
        for label, (first, last) in CRISIS_WINDOWS.items():
            self.define("crisis", label, "start", value=first)
            self.define("crisis", label, "end", value=last)

    def config_macros(self) -> None:
        """The primary row's settings (its runs share them), as the method section quotes them."""
        run = self.primary.runs[0]
        for node, keys in CONFIG_MACROS.items():
            section = getattr(run.config, node)
            for key, digits, scale in keys:
                self.define("cfg", node, key, value=number(float(getattr(section, key)), digits, scale))
        for key in BUDGET_MACROS:
            self.define("cfg", "budget", key, value=number(float(getattr(run.config.budget, key)), 0))

    def _mean_std_rows(self, frames: dict[str, pd.DataFrame], columns: tuple, prefix: str) -> list[list[str]]:
        keys = [c[0] for c in columns]
        mean, std = results.mean_and_std(frames, keys)
        rows = []
        for policy in mean.index:
            rows.append([display(policy)] + [mean_std(mean.at[policy, k], std.at[policy, k], d, s)
                                             for k, _, d, s in columns])
            for key, _, digits, scale in columns:
                self.define(prefix, key, policy, value=number(mean.at[policy, key], digits, scale))
                self.define(prefix, key, "std", policy, value=number(std.at[policy, key], digits, scale))
        return rows

    def ruined_seeds(self, policy: str) -> int:
        """How many of the policy's walks (one per seed) ended early, the book ruined."""
        frame = self.post[policy]
        return int(frame["ruin_bar"].notna().sum()) if "ruin_bar" in frame else 0

    def main_table(self) -> None:
        rows = self._mean_std_rows(self.post, MAIN_COLUMNS, "main")
        ruined = {p: self.ruined_seeds(p) for p in self.post}
        for row, policy in zip(rows, results.mean_and_std(self.post, ["sharpe"])[0].index):
            if ruined[policy]:
                row[0] += r"$^\dagger$"
        note = ("Marked: the book was ruined and the walk ended early on "
                + ", ".join(f"{display(p)} ({n} of {len(self.post[p])} seeds)" for p, n in ruined.items() if n)
                + "; its figures cover the bars walked.") if any(ruined.values()) else None
        self.table("main", latex.tabular(["Policy", *[c[1] for c in MAIN_COLUMNS]], rows, footnote=note))
        sharpe = {p: f["sharpe"].mean() for p, f in self.post.items()}
        contenders = [p for p in self.baselines if p != "oracle"]
        best = max(contenders, key=lambda p: sharpe[p]) if contenders else self.learned
        self.define("best", "baseline", value=display(best))
        self.define("best", "baseline", "sharpe", value=number(sharpe[best]))
        self.define("learned", "sharpe", value=number(sharpe[self.learned]))
        self.define("learned", "sharpe", "std", value=number(self.post[self.learned]["sharpe"].std(ddof=1)))
        self.define("learned", "beats", "best", "baseline",
                    value="above" if sharpe[self.learned] > sharpe[best] else "below")
        header = f"{'policy':<22}" + "".join(f"{c[0]:>20}" for c in MAIN_COLUMNS)
        print(f"\nmain table ({self.primary.market}, budget {self.primary.budget}, "
              f"seeds {self.primary.seeds}; mean +/- std over seeds)\n{header}")
        mean, std = results.mean_and_std(self.post, [c[0] for c in MAIN_COLUMNS])
        for policy in mean.index:
            cells = "".join(f"{mean.at[policy, k] * s:>12.{d}f} +/-{std.at[policy, k] * s:>5.{d}f}"
                            for k, _, d, s in MAIN_COLUMNS)
            print(f"{policy:<22}{cells}" + (f"   RUINED in {ruined[policy]} seeds" if ruined[policy] else ""))
        print()

    def precost_table(self) -> None:
        rows = []
        for policy, post in self.post.items():
            pre = self.pre[policy]
            drag = (pre["ann_return"] - post["ann_return"]).mean()
            rows.append([display(policy), number(pre["sharpe"].mean()), number(post["sharpe"].mean()),
                         number(pre["ann_return"].mean(), 1, 100), number(post["ann_return"].mean(), 1, 100),
                         number(drag, 2, 100), number(post["turnover"].mean(), 1)])
            for name in (policy, "learned") if policy == self.learned else (policy,):
                self.define("pre", "cost", "sharpe", name, value=number(pre["sharpe"].mean()))
                self.define("cost", "drag", name, value=number(drag, 2, 100))
        header = ["Policy", "Sharpe pre", "Sharpe post", r"Return pre (\%)", r"Return post (\%)",
                  r"Cost drag (\%)", "Turnover"]
        self.table("precost", latex.tabular(header, rows))

    def risk_tables(self) -> None:
        rows = self._mean_std_rows(self.post, RISK_COLUMNS, "risk")
        self.table("risk", latex.tabular(["Policy", *[c[1] for c in RISK_COLUMNS]], rows))
        n_bars = len(next(iter(self.series.values())))
        if n_bars <= self.options.var_window + 1:
            self.table("var_backtests", latex.note(f"The test split's {n_bars} bars leave no VaR backtest after "
                                                   f"a {self.options.var_window}-bar estimation window."))
            for parts in (("exception", "rate", "learned"), ("kupiec", "p", "learned"), ("backtest", "bars")):
                self.define("var", *parts, value=latex.MISSING)
            return
        tests = results.var_backtest_table(self.series, self.options.var_window, self.options.var_confidence)
        rows = [[display(p), number(r.exception_rate, 2, 100), number(r.expected_rate, 2, 100),
                 number(r.kupiec_p, 3), number(r.independence_p, 3), number(r.coverage_p, 3)]
                for p, r in tests.iterrows()]
        learned = tests.loc[self.learned]
        self.define("var", "exception", "rate", "learned", value=number(learned.exception_rate, 2, 100))
        self.define("var", "kupiec", "p", "learned", value=number(learned.kupiec_p, 3))
        self.define("var", "backtest", "bars", value=str(int(tests["bars"].iloc[0])))
        header = ["Policy", r"Exceptions (\%)", r"Expected (\%)", "Kupiec $p$", "Indep. $p$", "Cond. cov. $p$"]
        self.table("var_backtests", latex.tabular(header, rows))

    def _regime_tabular(self, labels: pd.Series, order: tuple[str, ...] | None = None) -> str:
        table = results.regime_table(self.series, labels, self.periods)
        present = set(table.index.get_level_values(1))
        regimes = [r for r in order if r in present] if order else sorted(present)
        header = ["Policy"] + [f"{escape(str(r).replace('_', ' '))} Sharpe" for r in regimes] + \
                 [f"{escape(str(r).replace('_', ' '))} ret. (\\%)" for r in regimes]
        rows = []
        for policy in self.series:
            part = table.loc[policy]
            rows.append([display(policy)] + [number(part.sharpe.get(r, np.nan)) for r in regimes]
                        + [number(part.ann_return.get(r, np.nan), 1, 100) for r in regimes])
        shares = table.loc[self.learned, "share"]
        footer = ["Share of bars (\\%)", *[number(shares.get(r, np.nan), 1, 100) for r in regimes]]
        footer += [""] * len(regimes)
        return latex.tabular(header, [*rows, footer])

    def regime_tables(self) -> None:
        """By detected regime (the primary row's first run's: the detector has its own seed in the
        features config, which every run of a setting shares) and by the generator's true regime."""
        detected = self.primary.runs[0].folder.regimes()
        if detected is None or detected.shape[1] == 0:
            self.table("regimes_detected", latex.note(f"No detected regimes: {self.primary.runs[0].path} has no "
                                                      "regime probabilities in eval/regimes.parquet."))
        else:
            self.table("regimes_detected", self._regime_tabular(regime_labels(detected)))
        truth = None if self.market is None else self.market.ground_truth
        if truth is None:
            reason = self.market_problem or f"market '{self.primary.market}' has no ground truth (not synthetic)"
            self.table("regimes_true", latex.note(f"No true regimes: {reason}."))
            return
        labels = pd.Series(np.asarray(truth.regime_names)[truth.regime], index=self.market.timestamps)
        self.table("regimes_true", self._regime_tabular(labels, truth.regime_names))

    def bootstrap_table(self) -> None:
        table = results.bootstrap_table(self.series, self.options.resamples, self.options.seed, self.periods)
        rows = []
        for policy in self.series:
            part = table.loc[policy]
            rows.append([display(policy), number(part.at["sharpe", "observed"]), number(part.at["sharpe", "q0.05"]),
                         number(part.at["sharpe", "q0.95"]), number(part.at["sharpe", "p_below_zero"], 2),
                         number(part.at["max_drawdown", "q0.05"], 1, 100),
                         number(part.at["max_drawdown", "q0.5"], 1, 100), number(part.at["var", "q0.95"], 2, 100)])
        learned = table.loc[self.learned]
        self.define("mc", "sharpe", "low", value=number(learned.at["sharpe", "q0.05"]))
        self.define("mc", "sharpe", "high", value=number(learned.at["sharpe", "q0.95"]))
        self.define("mc", "prob", "loss", value=number(learned.at["sharpe", "p_below_zero"], 2))
        self.define("mc", "worst", "drawdown", value=number(learned.at["max_drawdown", "q0.05"], 1, 100))
        header = ["Policy", "Sharpe", "Sharpe 5\\%", "Sharpe 95\\%", "P(Sharpe$<$0)", r"Max DD 5\% (\%)",
                  r"Max DD med. (\%)", r"VaR 95\% (\%)"]
        self.table("bootstrap", latex.tabular(header, rows))

    def crash_table(self) -> None:
        for key in ("paths", "years", "start", "length"):
            self.define("crash", key, value=f"{getattr(self.options, f'crash_{key}'):g}")
        run = self.primary.runs[0]
        if self.market is None or self.market.ground_truth is None or self.options.crash_paths < 1:
            reason = self.market_problem or ("no crash paths asked for" if self.options.crash_paths < 1 else
                                             f"market '{self.primary.market}' is not synthetic")
            self.table("crash", latex.note(f"No crash scenarios: {reason}."))
            return
        baseline_config = BaselineConfig(rebalance_every=run.config.hierarchy.meta_period)
        policies = {p: baseline_policy(p, baseline_config, self.options.seed)
                    for p in self.baselines if p in self.options.crash_policies}
        env_config, env_kwargs, note = run.config.env, None, None
        try:                              # the learned policy acts on new paths from its checkpoint
            learned, env_kwargs, env_config = learned_crash_policy(run, self.options.crash_start)
            policies = {self.learned: learned, **policies}
        except (FileNotFoundError, KeyError, ValueError) as error:
            note = f"Baselines only: {NAMES.get(self.learned, self.learned)}'s checkpoint did not load ({error})."
        scenarios = crash_scenarios(run.config.market.synthetic, self.options.crash_paths,
                                    np.random.default_rng(self.options.seed), self.options.crash_years,
                                    self.options.crash_start, self.options.crash_length)
        table = crash_stress(policies, scenarios, env_config, env_kwargs=env_kwargs)
        table = table.groupby("policy", sort=False).mean()
        rows = [[display(p), number(r.window_return, 1, 100), number(r.calm_window_return, 1, 100),
                 number(r.crash_cost, 1, 100), number(r.max_drawdown, 1, 100), number(r.worst_bar, 2, 100)]
                for p, r in table.iterrows()]
        header = ["Policy", r"Crash window (\%)", r"Calm twin (\%)", r"Crash cost (\%)", r"Max DD (\%)",
                  r"Worst bar (\%)"]
        self.table("crash", latex.tabular(header, rows, footnote=note))

    def crisis_table(self) -> None:
        table, absent = results.crisis_table(self.series, CRISIS_WINDOWS, self.periods)
        listed = ", ".join(f"{k} ({a} to {b})" for k, (a, b) in CRISIS_WINDOWS.items())
        if table.empty:
            index = next(iter(self.series.values())).index
            self.table("crisis", latex.note(f"The test split ({index[0].date()} to {index[-1].date()}) covers none "
                                            f"of the crisis windows {listed}."))
            return
        windows = list(dict.fromkeys(table.index.get_level_values(1)))
        header = ["Policy"] + [f"{escape(w)} {h}" for w in windows for h in (r"ret. (\%)", r"max DD (\%)")]
        rows = [[display(p)] + [number(table.at[(p, w), k], 1, 100) for w in windows
                                for k in ("window_return", "max_drawdown")] for p in self.series]
        note = f"Not in the test split: {', '.join(absent)}." if absent else None
        self.table("crisis", latex.tabular(header, rows, footnote=note))

    def cost_table(self) -> None:
        if self.market is None:
            self.table("costs", latex.note(f"No cost stress: {self.market_problem}."))
            for factor in COST_FACTORS:
                self.define("cost", "sharpe", f"x{factor:g}", "learned", value=latex.MISSING)
            return
        self.cost_stress = results.cost_stress_table(self.primary, self.results_policies, self.history)
        factors = list(self.cost_stress.columns)
        header = ["Policy"] + [f"Sharpe {f:g}$\\times$" for f in factors] + [f"Return {factors[-1]:g}$\\times$ (\\%)"]
        rows = []
        for policy in self.results_policies:
            sharpe = self.cost_stress.loc[(policy, "sharpe")]
            rows.append([display(policy)] + [number(sharpe[f]) for f in factors]
                        + [number(self.cost_stress.loc[(policy, "ann_return"), factors[-1]], 1, 100)])
            for factor in factors:
                self.define("cost", "sharpe", f"x{factor:g}", policy, value=number(sharpe[factor]))
                if policy == self.learned:
                    self.define("cost", "sharpe", f"x{factor:g}", "learned", value=number(sharpe[factor]))
        self.table("costs", latex.tabular(header, rows))

    @property
    def results_policies(self) -> list[str]:
        """The primary row's policies (its runs hold their trades)."""
        return [self.learned, *self.baselines]

    def ablation_table(self) -> None:
        table = results.ablation_table(self.groups, self.options.resamples, self.options.seed)
        full = table["mean"].get("full", np.nan)
        rows = []
        for ablation, r in table.iterrows():
            rows.append([display(ablation), display(r.policy), str(int(r.n)), mean_std(r["mean"], r["std"]),
                         number(r.iqm), latex.interval(r.iqm_low, r.iqm_high), number(r["mean"] - full),
                         number(r.ann_return, 1, 100), number(r.max_drawdown, 1, 100)])
            self.define("abl", "sharpe", ablation, value=number(r["mean"]))
            self.define("abl", "iqm", ablation, value=number(r.iqm))
            self.define("abl", "delta", ablation, value=number(r["mean"] - full))
        for ablation in set(ABLATIONS) - set(table.index):               # not in this sweep
            for kind in ("sharpe", "iqm", "delta"):
                self.define("abl", kind, ablation, value=latex.MISSING)
        header = ["Ablation", "Policy", "Seeds", "Sharpe", "IQM", "IQM 95\\% CI", "$\\Delta$ vs full",
                  r"Return (\%)", r"Max DD (\%)"]
        self.table("ablations", latex.tabular(header, rows))

    def domain_table(self) -> None:
        table = results.domain_table(self.primary, self.results_policies)
        if table.empty:
            self.table("domains", latex.note("No per-domain attribution: no instrument contributions recorded."))
            return
        domains = list(self.primary.metadata["domains"])
        header = ["Policy"] + [f"{escape(d)} gross" for d in domains] + [f"{escape(d)} contr. (\\%)" for d in domains]
        rows = []
        for policy in dict.fromkeys(table.index.get_level_values(0)):
            part = table.loc[policy]
            rows.append([display(policy)] + [number(part.at[d, "gross_exposure"]) for d in domains]
                        + [number(part.at[d, "ann_contribution"], 1, 100) for d in domains])
        for domain in domains:
            self.define("domain", "exposure", domain, value=number(table.at[(self.learned, domain), "gross_exposure"]))
            self.define("domain", "contribution", domain,
                        value=number(table.at[(self.learned, domain), "ann_contribution"], 1, 100))
        self.table("domains", latex.tabular(header, rows))

    def significance_table(self) -> None:
        table = results.significance_table(self.series[self.learned], {b: self.series[b] for b in self.baselines},
                                           self.options.resamples, self.options.seed, self.periods)
        rows = [[display(b), number(r.sharpe_difference), latex.interval(r.ledoit_wolf_low, r.ledoit_wolf_high),
                 number(r.ledoit_wolf_p, 3), number(r.memmel_p, 3), number(r.share_significant, 2)]
                for b, r in table.iterrows()]
        for baseline, r in table.iterrows():
            self.define("sig", "diff", baseline, value=number(r.sharpe_difference))
            self.define("sig", "p", baseline, value=number(r.ledoit_wolf_p, 3))
        header = ["Baseline", "$\\Delta$ Sharpe", "95\\% CI (LW)", "$p$ (LW)", "$p$ (Memmel)", "Seeds $p<0.05$"]
        self.table("significance", latex.tabular(header, rows))

    def _universe_walks(self) -> pd.DataFrame | None:
        """The primary row's universe walks with the other rows' learned policies (flat PPO)."""
        walks = results.universe_walks(self.primary)
        if walks is None:
            return None
        for group in self.groups:
            if group is not self.primary and group.policy not in set(walks["policy"]):
                theirs = results.universe_walks(group)
                if theirs is not None:
                    walks = pd.concat([walks, theirs[theirs["policy"] == group.policy]], ignore_index=True)
        return walks

    def universes_tables(self) -> None:
        """Sharpe over fresh test universes x seeds with paired differences from the learned
        policy (`eval.power`), and the ablations on the same universes."""
        walks = self._universe_walks()
        present = set() if walks is None else set(walks["policy"])
        for policy in sorted({*LEARNED_POLICIES, *EVALUATED_BASELINES} - present):   # the text may name any
            for kind in ("sharpe", "low", "high", "share", "delta", "pvalue"):
                self.define("uni", kind, policy, value=latex.MISSING)
        if walks is None:
            message = "No test-universe walks: the market is not synthetic or evaluation.test_universes=0."
            self.table("universes", latex.note(message))
            self.table("ablations_universes", latex.note(message))
            self.define("universes", "count", value=latex.MISSING)
            self._missing_ablation_macros(set())
            return
        policies = results.policy_order(sorted(set(walks["policy"])))
        table = results.universes_table(walks, policies, self.learned, bound="oracle_cost_aware")
        self.define("universes", "count", value=str(walks["universe"].nunique()))
        rows = []
        for policy, r in table.iterrows():
            share = r.get("oracle_share", np.nan)
            diff = (MISSING_CELLS if policy == self.learned else
                    [number(r["diff"]), latex.interval(r["diff_low"], r["diff_high"]), number(r["p_value"], 3)])
            rows.append([display(policy), number(r["mean"]), latex.interval(r["low"], r["high"]), *diff,
                         number(share, 0, 100), number(r["ruined"], 0, 100)])
            self.define("uni", "sharpe", policy, value=number(r["mean"]))
            self.define("uni", "low", policy, value=number(r["low"]))
            self.define("uni", "high", policy, value=number(r["high"]))
            self.define("uni", "share", policy, value=number(share, 0, 100))
            self.define("uni", "delta", policy, value=latex.MISSING if policy == self.learned else number(r["diff"]))
            self.define("uni", "pvalue", policy,
                        value=latex.MISSING if policy == self.learned else number(r["p_value"], 3))
        header = ["Policy", "Sharpe", "95\\% CI", f"$\\Delta$ vs {escape(display(self.learned))}", "95\\% CI", "$p$",
                  r"Oracle share (\%)", r"Ruined (\%)"]
        self.table("universes", latex.tabular(header, rows))
        print(f"\nSharpe over {walks['universe'].nunique()} test universes x seeds "
              f"{sorted(set(walks['seed']))} (two-way random-effects t; diff = policy - {self.learned})")
        print(table.to_string(float_format="{:+.3f}".format))
        self.universe_ablation_table()

    def universe_ablation_table(self) -> None:
        table = results.universe_ablation_table(self.groups)
        self._missing_ablation_macros(set() if table is None else set(table.index))
        if table is None:
            self.table("ablations_universes", latex.note("Some ablation has no test-universe walks, or no full row."))
            return
        rows = []
        for ablation, r in table.iterrows():
            diff = (MISSING_CELLS if ablation == "full" else
                    [number(r["diff"]), latex.interval(r["diff_low"], r["diff_high"]), number(r["p_value"], 3)])
            rows.append([display(ablation), display(r["policy"]), str(int(r["seeds"])), number(r["mean"]),
                         latex.interval(r["low"], r["high"]), *diff])
            self.define("abluni", "sharpe", ablation, value=number(r["mean"]))
            self.define("abluni", "delta", ablation, value=latex.MISSING if ablation == "full" else number(r["diff"]))
            self.define("abluni", "pvalue", ablation,
                        value=latex.MISSING if ablation == "full" else number(r["p_value"], 3))
        header = ["Ablation", "Policy", "Seeds", "Sharpe", "95\\% CI", "$\\Delta$ vs full", "95\\% CI", "$p$"]
        self.table("ablations_universes", latex.tabular(header, rows))

    def _missing_ablation_macros(self, present: set[str]) -> None:
        for ablation in sorted(set(ABLATIONS) - present):
            for kind in ("sharpe", "delta", "pvalue"):
                self.define("abluni", kind, ablation, value=latex.MISSING)

    def probes(self) -> None:
        """What the meta-controller does in each true regime (`eval.probes`), over the primary
        row's seeds: a table, a figure and the macros of its two questions (does it de-risk in
        the volatile regime; does it tilt toward the domain of the best conditional Sharpe)."""
        path = self.figures / "probes.pdf"
        logs = {run.seed: run.folder.decisions() for run in self.primary.runs}
        logs = {seed: log for seed, log in logs.items() if log}
        truth = None if self.market is None else self.market.ground_truth
        if truth is None or not logs or "allocation" not in next(iter(logs.values()))[0]:
            reason = self.market_problem or ("no ground truth: the market is not synthetic" if truth is None
                                             else "no decision log of the meta-controller")
            self.table("probes", latex.note(f"No regime probes: {reason}."))
            figures.placeholder_figure(reason, path)
            for name in ("appetite delta", "appetite low", "appetite high", "tilt", "tilt low", "tilt high"):
                self.define("probe", name, value=latex.MISSING)
            return
        regimes = probes.regime_series(self.market)
        behaviour = pd.concat({seed: probes.behaviour_by_regime(log, regimes) for seed, log in logs.items()},
                              names=["seed", "regime"])
        sharpe = probes.domain_sharpe_by_regime(self.market)
        vol = probes.realised_vol_by_regime(self.market)
        figures.probe_figure(behaviour, sharpe, vol, path)
        domains = list(sharpe.columns)
        mean = behaviour.groupby(level="regime").mean()
        rows = []
        for regime in sharpe.index.intersection(mean.index):
            best = sharpe.loc[regime].idxmax()
            rows.append([escape(regime), number(mean.at[regime, "bars"], 0), number(vol.get(regime), 1, 100),
                         *[f"{number(mean.at[regime, f'allocation_{d}'])} ({number(sharpe.at[regime, d])})"
                           for d in domains], escape(best), number(mean.at[regime, "risk_appetite"])])
        header = ["Regime", "Bars", r"Vol. (\%)", *[escape(d) for d in domains], "Best domain", "Appetite"]
        self.table("probes", latex.tabular(header, rows))
        seeds = behaviour.index.get_level_values("seed").unique()
        appetite = behaviour["risk_appetite"].unstack("regime").reindex(seeds)
        calm = [r for r in appetite.columns if r != "volatile"]
        shares = np.array([[behaviour.at[(seed, r), f"allocation_{sharpe.loc[r].idxmax()}"]
                            for r in sharpe.index if (seed, r) in behaviour.index] for seed in seeds])
        answers = {("appetite", "delta"): appetite["volatile"] - appetite[calm].mean(axis=1)
                   if "volatile" in appetite.columns and calm else None,
                   ("tilt", ""): pd.Series(shares.mean(axis=1) - 1.0 / len(domains))}
        for (name, suffix), values in answers.items():
            result = None if values is None or len(values) < 2 else crossed_mean(values.to_numpy()[None, :])
            for part, value in (("mean", suffix), ("low", "low"), ("high", "high")):
                self.define("probe", name, value, value=latex.MISSING if result is None
                            else number(getattr(result, part)))
            if result is not None:
                print(f"regime probe {name}: {result.mean:+.3f} [{result.low:+.3f}, {result.high:+.3f}] over "
                      f"seeds {list(seeds)}")

    def overfitting_table(self) -> None:
        sweep = results.sweep_returns(self.groups)
        searched = sum(self.searches.values())
        trials = results.trials_table(sweep, self.periods, sweep.shape[1] + searched)
        primary = trials.loc[self.primary.ablation]
        best = trials["sharpe"].idxmax()
        rows = [["Trials: runs in the sweep", str(len(trials))],
                ["Trials: hyperparameter-search trials", str(searched)],
                [f"PSR of {display(self.learned)} (mean over seeds)", number(primary["psr"].mean(), 3)],
                [f"DSR of {display(self.learned)} (mean over seeds)", number(primary["dsr"].mean(), 3)],
                [f"Best trial: {display(best[0])}, seed {best[1]}, Sharpe", number(trials.at[best, "sharpe"])],
                ["DSR of the best trial", number(trials.at[best, "dsr"], 3)]]
        self.define("num", "trials", value=str(len(trials) + searched))
        self.define("num", "search", "trials", value=str(searched))
        self.define("psr", "learned", value=number(primary["psr"].mean(), 3))
        self.define("dsr", "learned", value=number(primary["dsr"].mean(), 3))
        self.define("dsr", "best", value=number(trials.at[best, "dsr"], 3))
        if sweep.shape[1] >= 2:
            pbo = backtest_overfitting(sweep.to_numpy())
            rows += [["PBO (CSCV)", number(pbo.pbo, 3)], ["Combinations", str(len(pbo.logits))],
                     ["P(out-of-sample Sharpe $<$ 0)", number(pbo.probability_of_loss, 3)],
                     ["Degradation slope (OOS on IS)", number(pbo.degradation_slope, 2)]]
            self.define("pbo", value=number(pbo.pbo, 3))
            self.define("pbo", "loss", value=number(pbo.probability_of_loss, 3))
        else:
            rows.append(["PBO (CSCV)", "-- (one trial)"])
            self.define("pbo", value=latex.MISSING)
            self.define("pbo", "loss", value=latex.MISSING)
        self.table("overfitting", latex.tabular(["Statistic", "Value"], rows))

    def compute_tables(self) -> None:
        table = results.compute_table(self.groups)
        phases = [c for c in table.columns if c.startswith("phase")]
        header = ["Ablation"] + [f"{escape(p)} (s)" for p in phases] + ["Total (min)", "Env steps", "Steps/s"]
        rows = [[display(a)] + [number(r[p], 0) for p in phases]
                + [number(r.total_s / 60, 1), number(r.env_steps, 0), number(r.env_steps_per_s, 0)]
                for a, r in table.iterrows()]
        self.table("compute", latex.tabular(header, rows))
        primary = table.loc[self.primary.ablation]
        self.define("train", "minutes", value=number(primary.total_s / 60, 1))
        self.define("train", "env", "steps", value=number(primary.env_steps, 0))
        figures = results.bench_figures(Path(self.options.bench))
        labels = {"decision_p50_ms": "Decision latency p50, meta every bar (ms)",
                  "decision_p99_ms": "Decision latency p99, meta every bar (ms)",
                  "decision_weekly_meta_p50_ms": "Decision latency p50, weekly meta (ms)",
                  "decision_weekly_meta_p99_ms": "Decision latency p99, weekly meta (ms)",
                  "decision_batch_decisions_per_s": "Decisions/s, batch of 1024 envs",
                  "simulator_env_steps_per_s": "Simulator env-steps/s (E = 1024, N = 8)",
                  "simulator_speedup_vs_numpy": "Simulator speed-up over a numpy step"}
        rows = [[escape(labels.get(k, k.replace("_", " "))), number(v, 3 if v < 10 else 0)] for k, v in figures.items()]
        for key, value in figures.items():
            self.define("bench", key, value=number(value, 3 if value < 10 else 0))
        self.table("latency", latex.tabular(["Measure", "Value"], rows) if rows else latex.note(
            f"No benchmark results in {self.options.bench} (make bench writes them)."))

    def walk_forward_table(self) -> None:
        table = results.walk_forward_table(self.primary)
        if table is None:
            self.define("walk", "forward", "folds", value="0")
            self.table("walk_forward", latex.note("No walk-forward results: no run has eval/walk_forward.json "
                                                  "(walk-forward retraining has not been run)."))
            return
        policies = [c for c in table.columns if c not in ("test_start", "test_end")]
        header = ["Fold", "Test window"] + [display(p) for p in policies]
        rows = [[str(k), escape(f"{r.test_start} to {r.test_end}")] + [number(r[p]) for p in policies]
                for k, r in table.iterrows()]
        self.define("walk", "forward", "folds", value=str(len(table)))
        self.table("walk_forward", latex.tabular(header, rows, align="ll" + "r" * len(policies)))

    def runs_table(self) -> None:
        rows = [[display(g.ablation), escape(g.market), escape(g.budget), escape(", ".join(map(str, g.seeds))),
                 str(len(g.runs))] for g in self.groups]
        notes = [f"Control runs that see the next bar's return (leak_next_return): {', '.join(self.leaked)}."
                 if self.leaked else "",
                 f"Missing runs (failed or never finished): {', '.join(job.name for job in self.missing)}."
                 if self.missing else ""]
        note = " ".join(n for n in notes if n) or None
        self.define("num", "missing", "runs", value=str(len(self.missing)))
        self.table("runs", latex.tabular(["Ablation", "Market", "Budget", "Seeds", "Runs"], rows, align="lllrr",
                                         footnote=note))

    # ------------------------------------------------------------------ figures
    def write_figures(self) -> None:
        figures.equity_figure(self.series, self.figures / "equity.pdf")
        figures.drawdown_figure(self.series, self.figures / "drawdowns.pdf")
        figures.distribution_figure(self.series, self.figures / "returns.pdf")
        run = self.primary.runs[0]
        decisions = run.folder.decisions()
        regimes = run.folder.regimes()
        labels = regime_labels(regimes) if regimes is not None and regimes.shape[1] else None
        if decisions:
            figures.allocation_figure(decisions, labels, self.figures / "allocations.pdf")
        else:
            figures.placeholder_figure(f"no decision log in {run.folder.eval_dir}", self.figures / "allocations.pdf")
        if self.market is not None and self.market.n_instruments >= 2:
            figures.correlation_figure(self.market, self.figures / "correlation.pdf")
        else:
            figures.placeholder_figure(self.market_problem or "one instrument: no correlation",
                                       self.figures / "correlation.pdf")
        if self.cost_stress is not None:
            figures.cost_figure(self.cost_stress, self.figures / "costs.pdf")
        else:
            figures.placeholder_figure(self.market_problem, self.figures / "costs.pdf")


def missing_runs(root: str | Path) -> list[SweepJob]:
    """The jobs of every sweep under `root` (folders with `sweep.jsonl`) that did not finish."""
    return [job for record in sorted(Path(root).rglob(SWEEP_FILE)) for job in missing_jobs(record.parent)]


def report(options: ReportConfig) -> Report:
    """Find, group and report the runs under `options.runs` (see the module docstring)."""
    groups = select_setting(group_runs(find_runs(options.runs)), options.market, options.budget)
    print(f"runs used from {options.runs}:")
    for group in groups:
        print(f"  ablation={group.ablation}, market={group.market}, budget={group.budget}: seeds {group.seeds}")
        for run in group.runs:
            print(f"    {run.path}")
    started = time.perf_counter()
    result = Report(groups, options)
    for job in result.missing:
        print(f"warning: missing run: {job.describe()}")
    for folder, trials in result.searches.items():
        print(f"hyperparameter search {folder}: {trials} trials, counted in the deflated Sharpe ratio")
    result.write()
    print(f"wrote {len(TABLES)} tables, macros and {len(FIGURES)} figures under {options.out} "
          f"in {time.perf_counter() - started:.1f} s")
    return result


@hydra.main(config_path="../configs/eval", config_name="report", version_base="1.3")
def main(cfg: DictConfig) -> None:
    report(OmegaConf.to_object(cfg))


if __name__ == "__main__":
    main()
