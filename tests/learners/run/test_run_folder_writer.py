"""One writer per run folder: unique folders per process, an exclusive lock with the writer's
pid (a second writer refused, a dead writer's lock reclaimed), the record of every invocation,
and a refused start's folder removed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import learners.train  # noqa: F401  (registers the pid resolver of hydra.run.dir)
from learners.run.config import TrainConfig, register_configs
from learners.run.folder import RunFolder, RunFolderLocked

CONFIGS = str(Path(__file__).resolve().parents[3] / "configs")


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with folder.lock():
        assert folder.lock_file.read_text().strip() == str(os.getpid())
        with pytest.raises(RunFolderLocked, match=r"being written by process \d+"):
            with RunFolder(tmp_path / "run").lock():
                pass
    assert not folder.lock_file.exists()
    with folder.lock():                      # free again once released
        pass


def test_a_lock_left_by_a_dead_process_is_reclaimed_saying_so(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    folder.lock_file.write_text(dead.stdout)
    with folder.lock():
        pass
    assert f"reclaimed the lock left by process {dead.stdout.strip()}" in capsys.readouterr().err


def test_the_train_entry_refuses_a_folder_another_process_writes(tmp_path):
    from learners.train import train

    register_configs()
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        config: TrainConfig = OmegaConf.to_object(compose("train", overrides=["budget=smoke"]))
    with RunFolder(tmp_path / "run").lock(), pytest.raises(RunFolderLocked, match="being written by process"):
        train(config, tmp_path / "run")


def test_run_folders_differ_between_processes_started_in_the_same_second(monkeypatch):
    with initialize_config_dir(config_dir=CONFIGS, version_base="1.3"):
        hydra = compose("train", return_hydra_config=True).hydra
    first = OmegaConf.to_container(hydra.run, resolve=True)["dir"]
    assert first.endswith(f"_{os.getpid()}")
    monkeypatch.setattr("os.getpid", lambda: 4242)
    assert OmegaConf.to_container(hydra.run, resolve=True)["dir"] == first.rsplit("_", 1)[0] + "_4242"
    assert OmegaConf.to_container(hydra.sweep, resolve=True)["dir"].endswith("_4242")


def test_the_first_record_is_kept_and_every_invocation_appended(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_config(TrainConfig(seed=3), ["seed=3"])
    folder.record_invocation(["seed=3"], resume=False)
    folder.write_config(TrainConfig(seed=0, resume=True), ["resume=true"])
    folder.record_invocation(["resume=true"], resume=True)
    assert folder.read_config().seed == 3
    assert (folder.config_file.parent / "overrides.yaml").read_text().strip() == "- seed=3"
    assert [line["overrides"] for line in folder.invocations()] == [["seed=3"], ["resume=true"]]
    assert [line["resume"] for line in folder.invocations()] == [False, True]


def test_a_refused_start_removes_only_a_folder_of_hydra_files(tmp_path):
    empty = RunFolder(tmp_path / "empty")
    (empty.path / ".hydra").mkdir(parents=True)
    (empty.path / "train.log").write_text("")
    empty.discard_if_unused()
    assert not empty.path.exists()
    used = RunFolder(tmp_path / "used")
    (used.path / "phase1").mkdir(parents=True)
    (used.path / "train.log").write_text("")
    used.discard_if_unused()
    assert (used.path / "phase1").exists()
