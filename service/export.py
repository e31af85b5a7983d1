"""Export a trained run's hierarchy as a policy artifact the service loads on its own
(`service.artifact`), and the bars of a split to replay through it.

    python -m service.export ckpt=<run folder or .ckpt> [split=test] [out=<folder>] [rules=<yaml>]

The artifact's stream state is the run's features and the simulator's tables streamed through
every bar before the split's first (the tables from the first bar of the backtest's window,
as `eval.backtest` builds them), each streamed feature row checked against the run's own. The
networks are traced to TorchScript and checked against the eager modules. `rules` is a YAML
file of `service.artifact.ServiceConfig` (compliance rules, kill switch); without it the
compliance rules allow everything and the kill switch has its defaults. The split's bars are
written beside the artifact's files as `bars_<split>.jsonl` (data to replay, not part of the
artifact's hash). The artifact folder must not exist yet.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from omegaconf import MISSING

from envs.market_data import FORWARD_FILLED, MarketData
from features.streaming import StreamingFeatures, market_bars
from hierarchy.networks import module_key
from hierarchy.system import HierarchicalSystem
from learners.run.config import SPLITS
from learners.run.folder import RunFolder
from learners.run.restore import checkpoint_policy, restore
from learners.run.workspace import Workspace
from risk.env_hook import market_margin_rates
from service.arrays import write_arrays
from service.artifact import FORMAT, MANIFEST, STREAM, ServiceConfig, content_hash, file_hash, plain, typed
from service.cli import parse_command_line
from service.policy import MetaMode, SpecialistMean, torchscript
from service.tables import StreamingTables
from storage.atomic import json_ready, write_text


@dataclass
class ExportConfig:
    """Export a trained run's hierarchy as a policy artifact (see `service.export`)."""

    ckpt: str = MISSING     # a run folder (its last finished phase's best checkpoint) or a .ckpt file
    split: str = "test"     # the split the service will be fed; the stream state stops before it
    out: str = ""           # default: <run>/artifact
    rules: str = ""         # YAML of ServiceConfig; default: compliance allows everything


def bar_message(market: MarketData, t: int) -> dict:
    """Bar t of `market` as the service takes it (JSON-ready; no print: null)."""
    prices = {}
    for i, symbol in enumerate(market.symbols):
        fields = ("open", "high", "low", "close") if market.has_ohlc[i] else ("close",)
        fields += ("volume",) if market.has_volume[i] else ()
        prices[symbol] = {f: market.field(f)[t, i] for f in fields}
        if market.quality[t, i] == FORWARD_FILLED:
            prices[symbol]["forward_filled"] = True
    message = {"timestamp": market.timestamps[t].isoformat(), "prices": prices,
               "macro": dict(zip(market.macro_names, market.macro[t]))}
    if market.sentiment is not None:
        message["sentiment"] = dict(zip(market.symbols, market.sentiment[t]))
    return json_ready(message)


def _stream_history(ws: Workspace, split: str) -> dict[str, np.ndarray]:
    """The features streamed through bars [0, first of `split`) and the tables through the
    backtest window's bars before it, checked row by row against the run's features."""
    market, config = ws.market, ws.config
    first, window_start = ws.start(split), ws.rows(split).start
    features = StreamingFeatures.for_market(market, config.features, ws.features, ws.regime_detector)
    tables = StreamingTables(ws.settings.eval_env, market.has_ohlc, market.has_volume, market.bars_per_year,
                             market.macro_names, market.domain_index, len(market.domain_names))
    expected = ws.env_features
    for t, bar in enumerate(market_bars(market, 0, first)):
        row = features.update(bar)
        for name, streamed in (("instrument_features", row.instrument), ("global_features", row.global_),
                               ("regime_probs", row.regime)):
            if not np.array_equal(streamed, expected[name][t]):
                raise ValueError(f"the streamed {name} differ from the run's at row {t} ({market.timestamps[t]}): "
                                 f"the run's features were built by other code than features.streaming mirrors "
                                 f"(a data-lake entry written before a change of the feature code?)")
        if t >= window_start:
            tables.update(bar, row)
    return {**{f"features.{k}": v for k, v in features.state_dict().items()},
            **{f"tables.{k}": v for k, v in tables.state_dict().items()}}


def _trace(ws: Workspace, system: HierarchicalSystem, folder: Path) -> None:
    """meta.pt and specialist_<domain>.pt, each checked against the eager network."""
    env = ws.env("train", 1, ws.config.seed)
    env.reset(seed=ws.config.seed)
    meta_obs = torch.as_tensor(env.meta_observation(), dtype=torch.float32)
    D = len(system.domain_names)
    inputs = system.specialist_inputs(env.observation, np.zeros((1, D, D)))
    given = (torch.full((1,), 1.0 / D), torch.ones(1))
    modules = {"meta.pt": (MetaMode(system.meta), (meta_obs,))}
    modules.update({f"specialist_{module_key(d)}.pt": (SpecialistMean(system.specialist(k)), (*inputs[k], *given))
                    for k, d in enumerate(system.domain_names)})
    with torch.no_grad(), torchscript():
        for name, (module, example) in modules.items():
            traced = torch.jit.trace(module.eval(), example)
            with torch.jit.optimized_execution(False):
                scripted = traced(*example)
            eager = module(*example)
            if not all(torch.equal(a, b) for a, b in zip(_as_tuple(scripted), _as_tuple(eager))):
                raise RuntimeError(f"the traced {name} does not reproduce the eager network")
            torch.jit.save(traced, str(folder / name))


def _as_tuple(value: torch.Tensor | tuple) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def export(config: ExportConfig) -> Path:
    """Write the artifact (see module docstring); returns its folder."""
    if config.split not in SPLITS:
        raise ValueError(f"split='{config.split}' is not one of {SPLITS}")
    service = typed(ServiceConfig, yaml.safe_load(Path(config.rules).read_text()) or {}, config.rules) \
        if config.rules else ServiceConfig()
    service.check()
    path = Path(config.ckpt)
    checkpoint = RunFolder(path).policy_checkpoint("hierarchy") if path.is_dir() else path
    if checkpoint_policy(checkpoint) != "hierarchy":
        raise ValueError(f"{checkpoint} holds the flat PPO: the service serves the hierarchy")
    out = Path(config.out) if config.out else RunFolder.of_checkpoint(checkpoint).path / "artifact"
    if out.exists():
        raise FileExistsError(f"{out} exists: remove it or give another out=")
    ws, policies = restore(checkpoint)
    unsupported = {"hierarchy.coordinator": (ws.config.hierarchy.coordinator, "meta"),
                   "env.window": (ws.settings.eval_env.window, 0)}
    for key, (value, served) in unsupported.items():
        if value != served:
            raise ValueError(f"{checkpoint}: {key}={value!r}; the service serves {key}={served!r} only")
    if ws.config.leak_next_return:
        raise ValueError(f"{checkpoint}: a leak_next_return control run reads the next bar's return; "
                         "it cannot be served")
    market, system = ws.market, policies.system
    first = ws.start(config.split)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    write_arrays(partial / STREAM, _stream_history(ws, config.split))
    _trace(ws, system, partial)
    detector = ws.regime_detector
    manifest = {
        "format": FORMAT,
        "universe": {"symbols": market.symbols, "domains": market.domains, "asset_classes": market.asset_classes,
                     "domain_names": market.domain_names, "domain_index": market.domain_index.tolist(),
                     "has_ohlc": market.has_ohlc.tolist(), "has_volume": market.has_volume.tolist(),
                     "bars_per_year": market.bars_per_year, "macro_names": market.macro_names,
                     "macro_is_monthly": market.macro_is_monthly, "sentiment": market.sentiment is not None,
                     "costs": {k: v.tolist() for k, v in market.costs.as_dict().items()}},
        "config": {"features": ws.config.features, "env": ws.settings.eval_env, "hierarchy": ws.config.hierarchy,
                   "risk": dataclasses.replace(ws.config.risk, margin_rates=market_margin_rates(market)),
                   "service": service},
        "detector": None if detector is None else {
            "min_states": detector.min_states, "max_states": detector.max_states, "n_iter": detector.n_iter,
            "n_init": detector.n_init, "seed": detector.seed, "n_states_": detector.n_states_,
            "names_": detector.names_, "input_names_": detector.input_names_,
            **{k: getattr(detector, k).tolist() for k in ("center_", "scale_", "means_", "covars_", "transmat_",
                                                          "startprob_")}},
        "names": {"instrument": ws.features.instrument_names, "global": ws.features.global_names,
                  "regime": ws.features.regime_names},
        "history": {"market": market.name, "split": config.split, "first_bar": str(market.timestamps[0]),
                    "window_start": str(market.timestamps[ws.rows(config.split).start]),
                    "last_bar": str(market.timestamps[first - 1]), "first_decision": str(market.timestamps[first]),
                    "last_stamp_ns": int(market.timestamps[first - 1].value),
                    "last_ohlc": market.ohlcv[first - 1, :, :4].tolist(),
                    "max_gap_ns": int(np.diff(market.timestamps.asi8).max())},
        "run": {"checkpoint": str(checkpoint), "seed": ws.config.seed, "ablation": ws.config.ablation.name,
                "budget": ws.config.budget.name},
        "fixed_meta": bool(system.fixed_meta),
        "files": {p.name: file_hash(p) for p in sorted(partial.iterdir())},
    }
    manifest = json_ready(plain(manifest))
    manifest["content_hash"] = content_hash(manifest)
    write_text(partial / MANIFEST, json.dumps(manifest, indent=1, allow_nan=False))
    os.replace(partial, out)
    with (out / f"bars_{config.split}.jsonl").open("w") as file:
        for t in range(first, ws.rows(config.split).stop):
            file.write(json.dumps(bar_message(market, t), allow_nan=False) + "\n")
    return out


def main() -> None:
    config = parse_command_line(ExportConfig, sys.argv[1:], "service.export")
    try:
        out = export(config)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        sys.exit(f"service.export: {error}")
    digest = json.loads((out / MANIFEST).read_text())["content_hash"]
    print(f"service.export: artifact {out} (content hash {digest}); replay its split with\n"
          f"  python -m service.serve artifact={out} bars={out}/bars_{config.split}.jsonl")


if __name__ == "__main__":
    main()
