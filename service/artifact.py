"""The policy artifact: everything the service needs to decide as a trained run does, in one
folder, loadable without the run, its workspace or the training code.

    manifest.json           universe, costs, configs (features, env, hierarchy, risk limits,
                            service rules), the fitted regime HMM, feature names, the history
                            the stream state covers, the run it came from, file hashes and the
                            content hash (sha256 of the canonical manifest without it)
    meta.pt                 the meta-controller's deterministic action (TorchScript)
    specialist_<domain>.pt  each specialist's latent means (TorchScript)
    stream.bin              the streaming features and simulator tables after the last history
                            bar (`service.arrays`)

`load_artifact` checks every file against the manifest's hashes and the content hash, naming
the file that does not match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import OmegaConf

from envs.config import EnvConfig
from envs.costs import InstrumentCosts
from envs.market_data import MarketData
from features.config import FeaturesConfig
from features.regimes import RegimeDetector
from features.streaming import StreamingFeatures
from hierarchy.networks import module_key
from hierarchy.system import HierarchyConfig
from risk.limits import RiskLimits
from service.arrays import read_arrays
from service.audit import canonical
from service.compliance import ComplianceRules
from service.policy import torchscript
from service.tables import StreamingTables

FORMAT = 1
MANIFEST, STREAM = "manifest.json", "stream.bin"


@dataclass
class KillSwitchConfig:
    """When the service flattens and holds until an operator resets it."""

    max_drawdown: float = 0.3     # of equity from its peak since the service opened the book
    stale_bars: int = 5           # consecutive bars an instrument's OHLC may repeat unchanged


@dataclass
class ServiceConfig:
    """The service's own rules: compliance before each order, and the kill switch."""

    compliance: ComplianceRules = field(default_factory=ComplianceRules)
    kill_switch: KillSwitchConfig = field(default_factory=KillSwitchConfig)

    def check(self) -> None:
        self.compliance.check()
        if not 0.0 < self.kill_switch.max_drawdown <= 1.0:
            raise ValueError(f"kill_switch.max_drawdown={self.kill_switch.max_drawdown} must lie in (0, 1]")
        if self.kill_switch.stale_bars < 1:
            raise ValueError(f"kill_switch.stale_bars={self.kill_switch.stale_bars} must be >= 1")


def typed(schema: type, content: dict, what: str) -> Any:
    """`content` as the dataclass `schema` (a key the schema lacks fails naming it)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), content))
    except Exception as error:
        raise ValueError(f"{what} does not fit {schema.__name__}: {error}") from None


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_hash(manifest: dict) -> str:
    return hashlib.sha256(canonical({k: v for k, v in manifest.items() if k != "content_hash"}).encode()).hexdigest()


def plain(value: Any) -> Any:
    """A manifest value: dataclasses as dicts, infinities as the strings 'inf' / '-inf'."""
    if dataclasses.is_dataclass(value):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass
class Artifact:
    """A loaded artifact (see module docstring)."""

    path: Path
    manifest: dict
    meta: torch.jit.ScriptModule
    specialists: dict[str, torch.jit.ScriptModule]
    stream_state: dict[str, np.ndarray]

    @property
    def content_hash(self) -> str:
        return self.manifest["content_hash"]

    @property
    def universe(self) -> dict:
        return self.manifest["universe"]

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.universe["symbols"])

    def config(self, name: str) -> Any:
        """The typed config `name`: features, env, hierarchy, risk or service."""
        schemas = {"features": FeaturesConfig, "env": EnvConfig, "hierarchy": HierarchyConfig, "risk": RiskLimits,
                   "service": ServiceConfig}
        return typed(schemas[name], self.manifest["config"][name], f"{self.path / MANIFEST}: config.{name}")

    def costs(self) -> InstrumentCosts:
        return InstrumentCosts(**{k: np.asarray(v, dtype=np.float64) for k, v in self.universe["costs"].items()})

    def universe_market(self) -> MarketData:
        """The universe as a `MarketData` of two flat placeholder bars: its instruments,
        domains, asset classes, costs, macro series and bar frequency, for what is sized from
        a market (the paper book, the hierarchy); its prices are never read."""
        u = self.universe
        N, M = len(u["symbols"]), len(u["macro_names"])
        has_ohlc, has_volume = np.asarray(u["has_ohlc"], dtype=bool), np.asarray(u["has_volume"], dtype=bool)
        ohlcv = np.ones((2, N, 5))
        ohlcv[:, ~has_ohlc, :3] = np.nan
        ohlcv[:, ~has_volume, 4] = np.nan
        return MarketData(name=self.manifest["history"]["market"], timestamps=pd.date_range(
                              self.manifest["history"]["first_bar"], periods=2, freq="D"),
                          symbols=tuple(u["symbols"]), domains=tuple(u["domains"]),
                          asset_classes=tuple(u["asset_classes"]), ohlcv=ohlcv, costs=self.costs(),
                          bars_per_year=u["bars_per_year"], macro=np.zeros((2, M)), macro_names=tuple(u["macro_names"]),
                          macro_is_monthly=tuple(u["macro_is_monthly"]),
                          sentiment=np.zeros((2, N)) if u["sentiment"] else None, has_ohlc=has_ohlc,
                          has_volume=has_volume)

    def detector(self) -> RegimeDetector | None:
        """The run's fitted regime HMM (None without regime features)."""
        spec = self.manifest["detector"]
        if spec is None:
            return None
        detector = RegimeDetector(spec["min_states"], spec["max_states"], spec["n_iter"], spec["n_init"], spec["seed"])
        for name in ("center_", "scale_", "means_", "covars_", "transmat_", "startprob_"):
            setattr(detector, name, np.asarray(spec[name], dtype=np.float64))
        detector.n_states_, detector.names_ = spec["n_states_"], tuple(spec["names_"])
        detector.input_names_ = tuple(spec["input_names_"])
        return detector

    def new_features(self) -> StreamingFeatures:
        """The streaming features of the universe, fresh (load `stream_state` to continue)."""
        u, names = self.universe, self.manifest["names"]
        return StreamingFeatures(self.config("features"), tuple(u["symbols"]), np.asarray(u["has_ohlc"]),
                                 np.asarray(u["has_volume"]), u["bars_per_year"], tuple(u["macro_names"]),
                                 tuple(u["macro_is_monthly"]), u["sentiment"], tuple(names["instrument"]),
                                 tuple(names["global"]), self.detector())

    def new_tables(self) -> StreamingTables:
        u = self.universe
        return StreamingTables(self.config("env"), np.asarray(u["has_ohlc"]), np.asarray(u["has_volume"]),
                               u["bars_per_year"], tuple(u["macro_names"]), np.asarray(u["domain_index"]),
                               len(u["domain_names"]))


def load_artifact(path: str | Path) -> Artifact:
    """The artifact at `path`, its files checked against the manifest (ValueError naming the
    file that does not match, FileNotFoundError naming the one that is missing)."""
    path = Path(path)
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{path}: not a policy artifact (no {MANIFEST}); make one with "
                                f"python -m service.export ckpt=<run>")
    manifest = json.loads(manifest_file.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_file}: artifact format {manifest.get('format')}, this service reads {FORMAT}")
    if content_hash(manifest) != manifest.get("content_hash"):
        raise ValueError(f"{manifest_file}: the manifest does not match its content hash (edited)")
    for name, digest in manifest["files"].items():
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: missing from the artifact")
        if file_hash(path / name) != digest:
            raise ValueError(f"{path / name}: does not match the manifest's hash (changed or damaged)")
    domains = manifest["universe"]["domain_names"]
    with torchscript():
        meta = torch.jit.load(str(path / "meta.pt"), map_location="cpu")
        specialists = {d: torch.jit.load(str(path / f"specialist_{module_key(d)}.pt"), map_location="cpu")
                       for d in domains}
    return Artifact(path, manifest, meta, specialists, read_arrays(path / STREAM))
