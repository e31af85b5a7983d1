"""The curriculum end to end at the smoke budget: every phase and `phase=all` write what they
should, a later phase finds or runs the earlier one, a killed run resumes to the same numbers,
the same seed gives the same metrics, a NaN loss stops the run keeping the last checkpoint, and
data-parallel training runs on two CPU processes, spawned by Fabric or started per node as a
cluster does."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import learners.experiment.phases as phases
from learners.experiment.loop import TrainingStopped
from learners.run.config import TrainConfig, register_configs
from learners.run.folder import RunFolder
from learners.train import train

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")
SMOKE = ["budget=smoke", "market.synthetic.years=4", "evaluation.baselines=[equal_weight]",
         "curriculum.offline_datasets=true"]

pytestmark = pytest.mark.slow


def config(*overrides: str) -> TrainConfig:
    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        return OmegaConf.to_object(compose("train", overrides=[*SMOKE, *overrides]))


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("all")
    return run_dir, train(config("phase=all", "ablation=cql"), run_dir)


def test_phase_all_writes_checkpoints_logs_and_the_evaluation(full_run):
    run_dir, metrics = full_run
    for phase in ("phase1", "phase2", "phase3"):
        folder = run_dir / phase
        assert {"best.ckpt", "last.ckpt", "done"} <= {p.name for p in (folder / "checkpoints").iterdir()}
        assert list(folder.glob("events.out.tfevents.*"))
        assert len((folder / "validation.jsonl").read_text().splitlines()) == 3   # start + 2 rollouts
    assert sorted(p.name for p in (run_dir / "phase1" / "offline").iterdir()) == \
        ["commodities.npz", "equity.npz", "forex.npz"]
    saved = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert set(saved["policies"]) == set(saved["pre_cost"]) == {"hierarchy", "equal_weight"}
    for name in ("sharpe", "ann_return", "ann_vol", "max_drawdown", "turnover", "costs"):
        assert isinstance(saved["policies"]["hierarchy"][name], float)
    assert RunFolder(run_dir).read_evaluation() == metrics
    assert (run_dir / "eval" / "decisions.jsonl").exists() and (run_dir / "eval" / "hierarchy_returns.parquet").exists()
    assert set(saved["training"]["wall_s"]) == {"phase1", "phase2", "phase3"}
    # smoke: 4 envs x 60 bars per rollout, 2 rollouts of each phase's 480 env steps
    assert saved["training"]["env_steps"] == {"phase1": 480, "phase2": 480, "phase3": 480}


def test_the_run_writes_the_settings_it_ran_with(full_run):
    run_dir, _ = full_run
    folder = RunFolder(run_dir)
    config, settings = folder.read_config(), folder.read_settings()
    assert config.budget.name == "smoke" and settings.warmup_bars >= config.env.warmup_bars
    assert settings.eval_env.warmup_bars == settings.train_env.warmup_bars == settings.warmup_bars
    assert settings.train_env.episode_length == config.curriculum.rollout_bars == 60
    ppo = settings.phase1.ppo
    assert (ppo.num_envs, ppo.num_steps, ppo.total_timesteps) == (4, 60, 480)
    assert settings.phase3.ppo.learning_rate == pytest.approx(config.learner.ppo.learning_rate * 0.3)
    assert settings.phase2.ppo is None and settings.phase1.sac is None
    assert settings.phase2.sac.gamma == pytest.approx(config.learner.sac.gamma ** config.hierarchy.meta_period)
    assert settings.cql.num_updates == config.budget.cql_steps == 20


def test_same_seed_same_metrics_and_a_later_phase_starts_from_an_earlier_run(full_run, tmp_path):
    run_dir, metrics = full_run
    again = train(config("phase=all", "ablation=cql"), tmp_path / "again")
    assert again.policies == metrics.policies
    # phase 3 alone from the finished run: phases 1 and 2 come from it, not retrained
    later = train(config("phase=3", "ablation=cql", f"init_from={run_dir}"), tmp_path / "later")
    assert set(later.training.wall_s) == {"phase3"}
    assert later.policies["hierarchy"] == metrics.policies["hierarchy"]


def test_a_phase_without_its_predecessor_runs_it_first(tmp_path, capsys):
    metrics = train(config("phase=2"), tmp_path / "run")
    assert set(metrics.training.wall_s) == {"phase1", "phase2"}
    assert "phase1: no finished phase1" in capsys.readouterr().out


def test_a_killed_run_resumes_to_the_same_numbers(full_run, tmp_path, monkeypatch):
    _, metrics = full_run
    run_dir = tmp_path / "killed"
    calls = {"n": 0}
    real = phases.collect_rollout

    def dies_in_phase2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:                     # phase 1 made 2 rollouts; die in phase 2's second
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(phases, "collect_rollout", dies_in_phase2)
    with pytest.raises(KeyboardInterrupt):
        train(config("phase=all", "ablation=cql"), run_dir)
    monkeypatch.setattr(phases, "collect_rollout", real)
    with pytest.raises(FileExistsError, match="resume=true"):
        train(config("phase=all", "ablation=cql"), run_dir)
    resumed = train(config("phase=all", "ablation=cql", "resume=true"), run_dir)
    assert resumed.policies == metrics.policies


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real = phases.ppo_update
    calls = {"n": 0}

    def nan_at_the_second_rollout(*args, **kwargs):
        calls["n"] += 1
        stats = real(*args, **kwargs)
        return {**stats, "losses/value_loss": float("nan")} if calls["n"] > 3 else stats

    monkeypatch.setattr(phases, "ppo_update", nan_at_the_second_rollout)
    with pytest.raises(TrainingStopped, match=r"phase1, rollout 1: .*value_loss is nan"):
        train(config("phase=1"), tmp_path / "run")
    last = tmp_path / "run" / "phase1" / "checkpoints" / "last.ckpt"
    import torch
    assert torch.load(last, weights_only=True)["iteration"] == 0


def test_flat_ppo_ablation_trains_one_level(tmp_path, capsys):
    metrics = train(config("phase=all", "ablation=flat_ppo"), tmp_path / "flat")
    assert set(metrics.policies) == {"flat_ppo", "equal_weight"}
    assert metrics.training.env_steps == {"phase1": 480}
    assert "phase2, phase3: skipped" in capsys.readouterr().out


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """A data-parallel run of two processes Fabric spawns on this machine: its metrics."""
    run_dir = tmp_path_factory.mktemp("ddp")
    done = subprocess.run([sys.executable, "-m", "learners.train", *SMOKE, "phase=all", "fabric.devices=2",
                           "fabric.strategy=ddp", f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run_dir / "eval" / "metrics.json").read_text())


def test_ddp_on_two_cpu_processes(ddp_run):
    assert ddp_run["training"]["world_size"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_node_training_as_a_cluster_starts_it(ddp_run, tmp_path):
    """Two nodes of one process each, started the way a cluster starts them (one `torchrun
    --nnodes 2 --node_rank k` per node, as `srun` does per task under SLURM): Fabric takes ranks
    and the rendezvous from their environment, and the run equals the one-node run of two
    processes (same seeds per rank, same averaged gradients)."""
    run_dir, port = tmp_path / "nodes", _free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
                               f"--node_rank={k}", "--master_addr=127.0.0.1", f"--master_port={port}",
                               "-m", "learners.train", *SMOKE, "phase=all", "fabric.num_nodes=2", "fabric.devices=1",
                               "fabric.strategy=ddp", f"hydra.run.dir={run_dir}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (0, 1)]
    outputs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in outputs[1]
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    assert metrics["training"]["world_size"] == 2
    assert metrics["policies"] == ddp_run["policies"] and metrics["pre_cost"] == ddp_run["pre_cost"]


def compose_entry(name: str, *overrides: str, folder: str = CONFIGS):
    """The typed config of another entry point (<folder>/<name>.yaml), as its command line makes it."""
    with initialize_config_dir(config_dir=folder, version_base="1.3"):
        return OmegaConf.to_object(compose(name, overrides=list(overrides)))


def test_eval_backtest_replays_a_run_from_its_checkpoint(full_run, tmp_path):
    from eval.backtest import replay

    run_dir, metrics = full_run
    replay(compose_entry("backtest", f"ckpt={run_dir}", "split=test", f"out={tmp_path / 'bt'}"))
    summary = json.loads((tmp_path / "bt" / "summary_hierarchy.json").read_text())
    assert summary["checkpoint"].endswith("phase3/checkpoints/best.ckpt")
    assert summary["post_cost"]["sharpe"] == metrics.policies["hierarchy"]["sharpe"]
    assert summary["pre_cost"]["sharpe"] == metrics.pre_cost["hierarchy"]["sharpe"]
    assert (tmp_path / "bt" / "decisions.jsonl").exists() and (tmp_path / "bt" / "hierarchy_weights.parquet").exists()
    replay(compose_entry("backtest", f"ckpt={run_dir / 'phase1' / 'checkpoints' / 'best.ckpt'}",
                         "policy=equal_weight", f"out={tmp_path / 'ew'}"))
    ew = json.loads((tmp_path / "ew" / "summary_equal_weight.json").read_text())
    assert ew["post_cost"]["sharpe"] == metrics.policies["equal_weight"]["sharpe"]
    with pytest.raises(ValueError, match="split='trian' is not one of"):
        replay(compose_entry("backtest", f"ckpt={run_dir}", "split=trian"))


def test_eval_backtest_command_line_names_a_misspelled_key(full_run):
    run_dir, _ = full_run
    bad = subprocess.run([sys.executable, "-m", "eval.backtest", f"ckpt={run_dir}", "splt=test"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Key 'splt' not in 'BacktestConfig'" in bad.stderr


def test_the_report_scores_the_learned_policy_on_crash_paths(full_run, tmp_path):
    from eval.report import report

    run_dir, _ = full_run
    report(compose_entry("report", f"runs={run_dir}", f"out={tmp_path / 'paper'}", "resamples=100", "crash_paths=1",
                         "crash_policies=[equal_weight]", folder=f"{CONFIGS}/eval"))
    crash = (tmp_path / "paper" / "tables" / "crash.tex").read_text()
    assert "Hierarchy" in crash and "Equal weight" in crash and "did not load" not in crash
