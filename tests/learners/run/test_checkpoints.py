"""Phase checkpoints: a round trip of modules, optimizers, learners and replays through files
that load with weights_only, atomic replacement, and clear errors."""

import pytest
import torch

from buffers.replay import ReplayBuffer
from learners.fabric import FabricConfig, adam, make_fabric
from learners.networks import SquashedGaussianAgent
from learners.run.checkpoints import PhaseCheckpoints
from learners.sac import SACConfig, SACLearner


def _objects(seed: int):
    torch.manual_seed(seed)
    fabric = make_fabric(FabricConfig(log_dir=""))
    net = torch.nn.Linear(3, 2)
    optimizer = adam(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    learner = SACLearner(SquashedGaussianAgent(3, 1, (8,)), 1, SACConfig(), fabric)
    replay = ReplayBuffer(10)
    replay.add(torch.randn(4, 3), torch.randn(4, 1), torch.randn(4), torch.randn(4, 3), torch.zeros(4))
    return fabric, {"net": net, "optimizer": optimizer, "learner": learner, "replay": replay}


def test_round_trip_restores_every_object_in_place(tmp_path):
    fabric, saved = _objects(0)
    checkpoints = PhaseCheckpoints(tmp_path, "phase2")
    checkpoints.save(fabric, "last", {**saved, "iteration": 7})
    assert checkpoints.exists("last") and not list(checkpoints.folder.glob("*.tmp"))
    torch.load(checkpoints.path("last"), weights_only=True)          # nothing but tensors and plain values
    _, fresh = _objects(1)
    state = checkpoints.load("last", fresh)
    assert state["iteration"] == 7
    assert torch.equal(fresh["net"].weight, saved["net"].weight)
    moments = [o.state_dict()["state"][0]["exp_avg"] for o in (fresh["optimizer"], saved["optimizer"])]
    assert torch.equal(*moments)
    for a, b in zip(fresh["learner"].agent.parameters(), saved["learner"].agent.parameters()):
        assert torch.equal(a, b)
    assert len(fresh["replay"]) == 4 and torch.equal(fresh["replay"].storage.obs, saved["replay"].storage.obs)
    assert not checkpoints.done
    checkpoints.mark_done(fabric)
    assert checkpoints.done


def test_errors_name_the_checkpoint_and_what_it_lacks(tmp_path):
    fabric, saved = _objects(0)
    checkpoints = PhaseCheckpoints(tmp_path, "phase1")
    with pytest.raises(FileNotFoundError, match="best.ckpt"):
        checkpoints.load("best", saved)
    checkpoints.save(fabric, "best", {"net": saved["net"]})
    with pytest.raises(KeyError, match=r"lacks \['learner'"):
        checkpoints.load("best", {"net": saved["net"], "learner": saved["learner"]})
    with pytest.raises(KeyError, match="'first' is not one of"):
        checkpoints.path("first")
