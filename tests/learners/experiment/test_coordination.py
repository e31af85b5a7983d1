"""The coordination variants (ablations consensus, mappo, risk_agent) at the smoke budget: each
trains through `phase=all` and, killed in the middle of the phase where its variant learns,
resumes to the numbers of the uninterrupted run; the consensus skips phase 2 and logs its votes;
a variant that cannot run is refused naming its key."""

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import learners.experiment.phases as phases
from learners.run.config import TrainConfig, check_config, register_configs
from learners.train import train

from .conftest import killed_at

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")
SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]", "phase=all"]

pytestmark = pytest.mark.slow


def config(*overrides: str) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=[*SMOKE, *overrides]))


# the rollout to kill: consensus in phase 3 (phase 2 is skipped), MAPPO in phase 1's second
# rollout (its critic, normaliser and optimizer restored), the risk agent in phase 2's second
@pytest.mark.parametrize("ablation, kill", [("consensus", 4), ("mappo", 2), ("risk_agent", 4)])
def test_each_variant_trains_and_resumes_exactly(ablation, kill, tmp_path, monkeypatch):
    whole = train(config(f"ablation={ablation}"), tmp_path / "whole")
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        killed_at(patch, phases, "collect_rollout", kill)
        with pytest.raises(KeyboardInterrupt):
            train(config(f"ablation={ablation}"), run_dir)
    resumed = train(config(f"ablation={ablation}", "resume=true"), run_dir)
    assert resumed.policies == whole.policies
    assert set(whole.training.wall_s) == ({"phase1", "phase3"} if ablation == "consensus"
                                          else {"phase1", "phase2", "phase3"})
    best = torch.load(run_dir / "phase3" / "checkpoints" / "best.ckpt", weights_only=True)
    if ablation == "mappo":
        assert "optimizer_critic" in best and any(k.startswith("central_critic.") for k in best["system"])
    if ablation == "risk_agent":
        assert any(k.startswith("meta.risk_agent.") for k in best["system"])
    if ablation == "consensus":
        lines = (run_dir / "eval" / "decisions.jsonl").read_text().splitlines()
        decisions = [m for line in lines for m in json.loads(line)["messages"] if m["type"] == "ConsensusDecision"]
        assert decisions and all("rationale" in m for m in decisions)


def test_variants_that_cannot_run_are_refused_naming_the_key():
    with pytest.raises(ValueError, match="hierarchy.coordinator='vote' is not one of meta, consensus"):
        check_config(config("hierarchy.coordinator=vote"))
    with pytest.raises(ValueError, match="learner.specialist_critic='shared' is not one of"):
        check_config(config("learner.specialist_critic=shared"))
    with pytest.raises(ValueError, match="hierarchy.risk_agent='learned' needs a meta-controller"):
        check_config(config("ablation=consensus", "hierarchy.risk_agent=learned"))
    with pytest.raises(ValueError, match=r"hierarchy.consensus.threshold=1.5 is out of range"):
        check_config(config("hierarchy.consensus.threshold=1.5"))
