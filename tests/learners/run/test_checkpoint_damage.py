"""A damaged checkpoint (truncated, empty, garbage) is named and called damaged, and a full disk
on save says so with the file, leaving the previous checkpoint in place."""

import errno

import pytest
import torch

import learners.fabric as fabric_module
from buffers.replay import ReplayBuffer
from learners.fabric import FabricConfig, make_fabric
from learners.run.checkpoints import PhaseCheckpoints
from learners.run.restore import checkpoint_policy


@pytest.fixture
def saved(tmp_path):
    fabric = make_fabric(FabricConfig(log_dir=""))
    checkpoints = PhaseCheckpoints(tmp_path, "phase1")
    net = torch.nn.Linear(3, 2)
    checkpoints.save(fabric, "last", {"net": net, "iteration": 3})
    return fabric, checkpoints, net


@pytest.mark.parametrize("damage", [lambda raw: raw[: len(raw) // 2], lambda raw: b"", lambda raw: b"garbage" * 50])
def test_a_damaged_checkpoint_is_named_and_called_damaged(saved, damage):
    _, checkpoints, net = saved
    path = checkpoints.path("last")
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=rf"{path}: the checkpoint is damaged"):
        checkpoints.load("last", {"net": net})
    with pytest.raises(ValueError, match="the checkpoint is damaged"):
        checkpoint_policy(path)


def test_a_damaged_replay_file_is_named(saved, tmp_path):
    fabric, checkpoints, _ = saved
    replay = ReplayBuffer(10)
    replay.add(torch.randn(4, 3), torch.randn(4, 1), torch.randn(4), torch.randn(4, 3), torch.zeros(4))
    checkpoints.replay.save(fabric, replay, 0)
    (rows,) = checkpoints.replay.folder.glob("*.pt")
    rows.write_bytes(rows.read_bytes()[:100])
    with pytest.raises(ValueError, match=rf"{rows}: the checkpoint is damaged"):
        checkpoints.replay.restore(ReplayBuffer(10), 0, 4)


def test_a_full_disk_says_so_and_keeps_the_previous_checkpoint(saved, monkeypatch):
    fabric, checkpoints, net = saved
    before = checkpoints.path("last").read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fabric_module.torch, "save", no_space)
    with pytest.raises(OSError, match=rf"{checkpoints.path('last')}: disk full") as raised:
        checkpoints.save(fabric, "last", {"net": net, "iteration": 4})
    assert raised.value.errno == errno.ENOSPC
    assert checkpoints.path("last").read_bytes() == before
    assert [p.name for p in checkpoints.folder.iterdir()] == ["last.ckpt"]       # no temporary left behind
