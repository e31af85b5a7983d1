"""The structured config of `python -m learners.train`, registered in hydra's ConfigStore, and
the checks of its values.

`configs/train.yaml` extends `TrainConfig`; the groups in `configs/` fill its nodes. Because the
schema is typed, a misspelled key or group (`markt=synthetic8`, `market.sourse=...`) fails at
start with hydra's message naming the key; `check_config` then names any value the curriculum
cannot run with. What a run actually ran with (each phase's learner settings, the env's warm-up)
is resolved from it once, in `learners.run.settings`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from envs.config import EnvConfig
from envs.loading import MarketConfig
from features.config import FeaturesConfig
from hierarchy.networks import SPECIALIST_TYPES
from hierarchy.system import COORDINATORS, RISK_AGENTS, HierarchyConfig
from learners.cql import CQLConfig
from learners.fabric import FabricConfig
from learners.ppo import PPOConfig
from learners.sac import SACConfig
from risk.limits import RiskLimits

PHASES = {"1": [1], "2": [2], "3": [3], "all": [1, 2, 3]}
SPLITS = ("train", "validation", "test")
SPECIALIST_CRITICS = ("independent", "central")


def phase_list(phase: str) -> list[int]:
    """The curriculum phases `phase` runs, in order (1: specialists, 2: meta, 3: joint)."""
    if phase not in PHASES:
        raise ValueError(f"phase={phase!r} is not one of {', '.join(PHASES)}")
    return PHASES[phase]


@dataclass
class BudgetConfig:
    """How much compute each phase gets, in env steps (bars x envs) unless noted; `smoke` for
    tests, `demo` for make demo, `paper` for the experiments."""

    name: str = "demo"
    num_envs: int = 256
    offline_steps: int = 16_128      # behaviour-policy env steps of phase 1's CQL dataset
    cql_steps: int = 2_000           # CQL gradient updates per specialist
    phase1_steps: int = 200_000
    phase2_steps: int = 100_000
    phase3_steps: int = 100_000


@dataclass
class CurriculumConfig:
    """How the phases learn (the `curriculum` node); what they may spend is in `budget`."""

    pretrain: str = "none"           # phase 1: 'cql' pre-trains the specialists offline first (ablation=cql)

    rollout_bars: int = 60           # bars per rollout (a multiple of hierarchy.meta_period); every
    #                                  rollout restarts the envs at fresh random bars
    reward_scale: float = 100.0      # rewards are fractions of equity per bar; learners see this times them
    critic_hidden: int = 64          # the specialists' CQL critics (256 x 256 costs 10x the compute)
    distill_steps: int = 500         # value-head distillation from the CQL critics
    offline_datasets: bool = False   # keep phase 1's behaviour datasets in phase1/offline/ (about 240 MB per
    #                                  specialist at the paper budget)
    meta_updates_per_decision: int = 4   # SAC steps per vector meta decision (E transitions)
    phase3_lr_scale: float = 0.3     # learning rates of both levels in joint fine-tuning
    phase3_meta_every: int = 1       # joint fine-tuning: meta updates every this many rollouts
    phase3_specialist_every: int = 1  # and specialist updates every this many
    validate_every: int = 5          # rollouts between validation backtests (best by validation Sharpe)
    validation_windows: int = 8      # the validation split walked as this many windows side by side (at
    #                                  most one per rollout_bars bars; 1: one walk through the whole split)
    validation_universe_years: float = 0.0   # synthetic markets: validate on a fresh draw of the generator
    #                                  this many years long instead of the validation split (0: the split)
    checkpoint_every: int = 5        # rollouts between last-checkpoint saves
    max_abs_loss: float = 1e6        # a loss beyond this stops the run as exploding


@dataclass
class WalkForwardConfig:
    """Walk-forward retraining (`evaluation.walk_forward`): folds of `in_sample` bars (the last
    `validation_fraction` of them select the checkpoint, after an embargo of
    `market.split.embargo_bars`), `purge` bars, then `out_of_sample` bars scored; the next fold
    `step` bars later. Rolling windows, or anchored at the first usable bar."""

    enabled: bool = False
    in_sample: int = 252
    out_of_sample: int = 63
    step: int = 63
    anchored: bool = False
    purge: int = 5
    validation_fraction: float = 0.25
    folds: int = 0                   # the last this many folds (0: all of them)
    steps_scale: float = 1.0         # each fold's phases get this share of the budget's env steps


@dataclass
class EvaluationConfig:
    """The evaluation after training: the best checkpoint and the baselines on a split."""

    split: str = "test"
    baselines: list[str] = field(default_factory=lambda: ["equal_weight", "buy_and_hold", "random"])
    flat_ppo: bool = False           # also train the flat single-agent PPO (phase 1's budget) as a baseline
    pre_cost: bool = True            # every policy also with trading costs scaled to zero
    decision_log: bool = True
    walk_forward: WalkForwardConfig = field(default_factory=WalkForwardConfig)
    # fresh test universes of a synthetic market (eval.universes): every policy also walks the
    # split of K new draws of the generator; a real market has one history (ignored there)
    test_universes: int = 16


@dataclass
class SearchConfig:
    """A run as one trial of a hyperparameter search (`configs/search/`, hydra's Optuna sweeper).
    A trial's objective is its best validation Sharpe (the checkpoint selection's own figure: the
    test split is never walked); `prune` stops a trial whose best validation Sharpe so far lies
    below the median of the finished trials' at the same phase and env step (Optuna's median
    rule, read from the sweep folder, since hydra's sweeper cannot prune a job it launched)."""

    trial: bool = False
    prune: bool = False
    startup_trials: int = 3          # finished trials in the sweep folder before any trial is pruned
    warmup_validations: int = 2      # a phase's validations (its untrained start included) before it can be
                                     # pruned


@dataclass
class LearnerConfig:
    """The three learners' hyperparameters (the `learner/` config group)."""

    ppo: PPOConfig = field(default_factory=PPOConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    cql: CQLConfig = field(default_factory=CQLConfig)
    # the specialists' critics: 'independent' (each its own value head, independent PPO) or
    # 'central' (one critic of the joint observation, MAPPO: `hierarchy.critic`)
    specialist_critic: str = "independent"


@dataclass
class AblationConfig:
    """Which ablation a run is (the `ablation/` group's files set the switches they name)."""

    name: str = "full"
    meta: bool = True            # False: equal allocation and full risk appetite throughout
    policy: str = "hierarchy"    # 'hierarchy' or 'flat' (single-agent PPO over all instruments)


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved with the run as `.hydra/config.yaml`."""

    experiment: str = "default"
    seed: int = 0                # the agent's seed; the synthetic market has its own (market.synthetic.seed)
    market: MarketConfig = field(default_factory=MarketConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    risk: RiskLimits = field(default_factory=RiskLimits)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    # which phases run: 1, 2, 3 or all (a plain value, not a config group: hydra reads `phase=1`
    # on the command line as a number, which cannot name a group's option)
    phase: str = "1"
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    resume: bool = False         # continue this run folder (hydra.run.dir=...) from its last checkpoints
    init_from: str = ""          # a run folder whose checkpoints the first phase here starts from
    # A control experiment, never a strategy: the next bar's return enters the observations (the
    # pipeline must then learn a very high Sharpe). Runs with it are flagged in their metrics.
    leak_next_return: bool = False


@dataclass(frozen=True)
class Range:
    """The interval a numeric setting must lie in: closed ends unless marked open."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True

    def __contains__(self, value: float) -> bool:        # False for NaN
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


COUNT, NATURAL = Range(1), Range(0)                  # integers >= 1, >= 0
POSITIVE = Range(0, low_open=True)                   # (0, inf)
FRACTION = Range(0, 1, low_open=True, high_open=True)   # (0, 1)
DISCOUNT = Range(0, 1, low_open=True, high_open=False)  # (0, 1]
# every numeric setting the run reads, by key, with the range it can run with (the env's and the
# risk limits' own checks come with them: `EnvConfig.check`, `RiskLimits.check`)
RANGES: dict[str, Range] = {
    "seed": NATURAL,
    **{f"budget.{key}": COUNT for key in ("num_envs", "offline_steps", "cql_steps", "phase1_steps",
                                          "phase2_steps", "phase3_steps")},
    **{f"curriculum.{key}": COUNT for key in ("rollout_bars", "critic_hidden", "phase3_meta_every",
                                              "phase3_specialist_every", "validate_every", "validation_windows",
                                              "checkpoint_every")},
    "curriculum.reward_scale": POSITIVE, "curriculum.distill_steps": NATURAL,
    "curriculum.meta_updates_per_decision": NATURAL, "curriculum.phase3_lr_scale": POSITIVE,
    "curriculum.max_abs_loss": Range(0, low_open=True, high_open=False),
    "curriculum.validation_universe_years": Range(0), "evaluation.test_universes": NATURAL,
    "hierarchy.meta_period": COUNT, "hierarchy.max_leverage": POSITIVE, "hierarchy.meta_hidden": COUNT,
    "hierarchy.meta_dropout": Range(0, 1), "hierarchy.logit_scale": POSITIVE, "hierarchy.specialist_hidden": COUNT,
    "hierarchy.coordination_threshold": Range(0, 1, high_open=False),
    "hierarchy.consensus.threshold": Range(0, 1, high_open=False),
    "hierarchy.consensus.review": Range(0, 1, high_open=False),
    "hierarchy.consensus.halflife": POSITIVE, "hierarchy.consensus.temperature": POSITIVE,
    "hierarchy.risk_hidden": COUNT,
    **{f"learner.ppo.{key}": POSITIVE for key in ("learning_rate", "clip_coef", "max_grad_norm", "adam_eps")},
    **{f"learner.ppo.{key}": COUNT for key in ("num_minibatches", "update_epochs", "hidden")},
    "learner.ppo.gamma": DISCOUNT, "learner.ppo.gae_lambda": Range(0, 1, high_open=False),
    "learner.ppo.ent_coef": NATURAL, "learner.ppo.vf_coef": NATURAL,
    **{f"learner.{sac}.{key}": POSITIVE for sac in ("sac", "cql.sac")
       for key in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha")},
    **{f"learner.{sac}.{key}": COUNT for sac in ("sac", "cql.sac")
       for key in ("buffer_size", "batch_size", "utd_ratio", "policy_delay", "hidden")},
    **{f"learner.{sac}.{key}": DISCOUNT for sac in ("sac", "cql.sac") for key in ("gamma", "tau")},
    "learner.sac.learning_starts": NATURAL,
    "learner.cql.cql_n_actions": COUNT, "learner.cql.cql_weight": NATURAL, "learner.cql.cql_temperature": POSITIVE,
    "learner.cql.alpha_prime_lr": POSITIVE, "learner.cql.bc_steps": NATURAL,
    "fabric.devices": COUNT, "fabric.num_nodes": COUNT, "fabric.torch_threads": NATURAL,
    "market.split.train_fraction": FRACTION, "market.split.validation_fraction": FRACTION,
    "market.split.embargo_bars": NATURAL,
    "evaluation.walk_forward.in_sample": Range(2), "evaluation.walk_forward.out_of_sample": COUNT,
    "evaluation.walk_forward.step": COUNT, "evaluation.walk_forward.purge": NATURAL,
    "evaluation.walk_forward.validation_fraction": FRACTION, "evaluation.walk_forward.folds": NATURAL,
    "evaluation.walk_forward.steps_scale": POSITIVE,
    "search.startup_trials": COUNT, "search.warmup_validations": COUNT,
}


def meta_learns(config: TrainConfig) -> bool:
    """Whether the run has a meta-controller to train (phase 2, and SAC in phase 3): not under
    `ablation.meta=false` (equal allocation) nor the consensus coordinator (a vote, nothing learnt)."""
    return config.ablation.meta and config.hierarchy.coordinator == "meta"


def setting(config: TrainConfig, key: str) -> object:
    """The value of dotted `key` ("budget.num_envs") in `config`."""
    return functools.reduce(getattr, key.split("."), config)


def check_ranges(config: TrainConfig) -> None:
    """Raise ValueError naming the key, the value and the allowed range of the first numeric
    setting out of `RANGES`."""
    for key, allowed in RANGES.items():
        value = setting(config, key)
        if value not in allowed:
            raise ValueError(f"{key}={value} is out of range: it must lie in {allowed}")


def check_config(config: TrainConfig) -> None:
    """Raise ValueError naming the key, the value and what it may be of any setting the run
    cannot run with: one pass over the whole config (the env and the risk limits included),
    before anything is built."""
    phase_list(config.phase)
    check_ranges(config)
    config.env.check()
    config.risk.check()
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
    choices = {"hierarchy.coordinator": COORDINATORS, "hierarchy.risk_agent": RISK_AGENTS,
               "learner.specialist_critic": SPECIALIST_CRITICS, "hierarchy.specialist_type": tuple(SPECIALIST_TYPES)}
    for key, allowed in choices.items():
        if setting(config, key) not in allowed:
            raise ValueError(f"{key}='{setting(config, key)}' is not one of {', '.join(allowed)}")
    if config.hierarchy.risk_agent == "learned" and not meta_learns(config):
        raise ValueError("hierarchy.risk_agent='learned' needs a meta-controller to learn with: hierarchy."
                         f"coordinator='{config.hierarchy.coordinator}', ablation.meta={config.ablation.meta}")
    types = {config.hierarchy.specialist_type, *config.hierarchy.specialists.values()}
    if config.curriculum.pretrain == "cql" and any(SPECIALIST_TYPES[name].reads_window for name in types
                                                   if name in SPECIALIST_TYPES):
        raise ValueError(f"curriculum.pretrain='cql' pre-trains on single-bar behaviour data: the specialist "
                         f"types {sorted(types)} (hierarchy.specialist_type, hierarchy.specialists) read windows")
    if config.init_from and not Path(config.init_from).is_dir():
        raise FileNotFoundError(f"init_from={config.init_from}: no such run folder")


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
