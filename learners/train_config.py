"""The structured config of `python -m learners.train`, registered in hydra's ConfigStore.

`configs/train.yaml` extends `TrainConfig`; the groups in `configs/` fill its nodes. Because the
schema is typed, a misspelled key or group (`markt=synthetic8`, `market.sourse=...`) fails at
start with hydra's message naming the key. This module and `learners.train` are the project's
composition root: the one place in `learners` that imports the market side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from envs.config import EnvConfig
from envs.loading import MarketConfig
from features.config import FeaturesConfig
from hierarchy.system import HierarchyConfig
from learners.cql import CQLConfig
from learners.fabric import FabricConfig
from learners.ppo import PPOConfig
from learners.sac import SACConfig
from risk.limits import RiskLimits


@dataclass
class PhaseConfig:
    """Which curriculum phases a run executes, in order (1: specialists, 2: meta, 3: joint)."""

    name: str = "1"
    phases: list[int] = field(default_factory=lambda: [1])
    pretrain: str = "cql"        # phase 1: CQL pre-training of the instrument heads, or 'none'


@dataclass
class BudgetConfig:
    """How much compute each phase gets; `smoke` for tests, `demo` for make demo, `paper`."""

    name: str = "demo"
    num_envs: int = 64
    cql_steps: int = 2_000
    phase1_steps: int = 200_000
    phase2_steps: int = 100_000
    phase3_steps: int = 100_000


@dataclass
class LearnerConfig:
    """The three learners' hyperparameters (the `learner/` config group)."""

    ppo: PPOConfig = field(default_factory=PPOConfig)
    sac: SACConfig = field(default_factory=SACConfig)
    cql: CQLConfig = field(default_factory=CQLConfig)


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
    phase: PhaseConfig = field(default_factory=PhaseConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
