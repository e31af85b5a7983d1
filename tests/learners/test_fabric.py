"""Checkpoints (weights_only round trip), determinism, NaN losses, gradient clipping, and a 2-process
DDP run."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from buffers.replay import Transitions
from learners.fabric import FabricConfig, clip_grad_norm, load_checkpoint, make_fabric, save_checkpoint
from learners.networks import SquashedGaussianAgent
from learners.ppo import PPOConfig, train_ppo
from learners.sac import SACConfig, SACLearner

ROOT = Path(__file__).resolve().parents[2]
TINY_PPO = PPOConfig(total_timesteps=512, num_envs=2, num_steps=64, num_minibatches=2, update_epochs=2)


def _batch(seed: int = 0) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(32, 3, generator=g)
    return Transitions(obs, torch.rand(32, 1, generator=g) * 2 - 1, torch.randn(32, generator=g),
                       obs + 0.1, torch.zeros(32))


def _sac_learner(fabric) -> SACLearner:
    return SACLearner(SquashedGaussianAgent(3, 1, (16, 16)), 1, SACConfig(), fabric)


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    fabric = make_fabric(FabricConfig(log_dir=""))
    learner = _sac_learner(fabric)
    for _ in range(3):
        learner.update(_batch())
    save_checkpoint(fabric, tmp_path / "sac.ckpt", learner.state_dict())
    raw = torch.load(tmp_path / "sac.ckpt", weights_only=True)
    assert raw["num_updates"] == 3 and raw["config"]["tau"] == 0.005
    restored = _sac_learner(fabric)
    restored.load_state_dict(load_checkpoint(tmp_path / "sac.ckpt", {}))
    for a, b in zip(learner.agent.state_dict().values(), restored.agent.state_dict().values()):
        assert torch.equal(a, b)
    assert restored.log_alpha == learner.log_alpha and restored.num_updates == 3
    # both continue identically (optimizer moments restored too)
    torch.manual_seed(1)
    expected = learner.update(_batch(1))
    torch.manual_seed(1)
    assert restored.update(_batch(1)) == expected


@pytest.mark.parametrize("max_norm", [0.1, 100.0])   # clipped, and left alone
def test_clip_grad_norm_agrees_with_torch(max_norm):
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 3)
    for net in (a, b):
        net(x).pow(2).sum().backward()
    norm = clip_grad_norm(list(a.parameters()), max_norm)
    torch.testing.assert_close(norm, torch.nn.utils.clip_grad_norm_(b.parameters(), max_norm))
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_same_seed_same_losses():
    runs = [train_ppo("CartPole-v1", TINY_PPO, FabricConfig(seed=3, log_dir="")).stats for _ in range(2)]
    other = train_ppo("CartPole-v1", TINY_PPO, FabricConfig(seed=4, log_dir="")).stats
    runs[0].pop("charts/SPS"), runs[1].pop("charts/SPS"), other.pop("charts/SPS")
    assert runs[0] == runs[1] and runs[0] != other


def test_nan_loss_names_the_loss_and_update():
    fabric = make_fabric(FabricConfig(log_dir=""))
    learner = _sac_learner(fabric)
    learner.update(_batch())
    bad = _batch()
    bad.rewards[0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"SAC update 2: losses/qf1_loss"):
        learner.update(bad)


@pytest.mark.slow
@pytest.mark.parametrize("algo,overrides", [
    ("ppo", ["env_id=CartPole-v1", "ppo.total_timesteps=512", "ppo.num_envs=2", "ppo.num_steps=64",
             "ppo.num_minibatches=2", "ppo.update_epochs=2", "ppo.target_kl=0.01",
             "ppo.vectorization=vector_entry_point"]),
    ("sac", ["env_id=Pendulum-v1", "sac.total_timesteps=300", "sac.learning_starts=200", "sac.hidden=32"]),
])
def test_ddp_on_two_cpu_processes(tmp_path, algo, overrides):
    command = [sys.executable, "-m", f"learners.{algo}", *overrides, "fabric.strategy=ddp", "fabric.devices=2",
               "fabric.torch_threads=1", f"fabric.log_dir={tmp_path}", "fabric.run_name=ddp"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "ddp" / f"{algo}.ckpt", weights_only=True)
    assert state["config"] and (tmp_path / "ddp" / ".hydra" / "config.yaml").exists()


def test_tensorboard_gets_cleanrl_scalar_names(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_ppo("CartPole-v1", TINY_PPO, FabricConfig(log_dir=str(tmp_path), run_name="tb"))
    (events,) = (tmp_path / "tb").rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    assert {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "losses/value_loss",
            "losses/policy_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac",
            "losses/explained_variance"} <= set(accumulator.Tags()["scalars"])
