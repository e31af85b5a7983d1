"""Parity: over the whole test split the service decides as `eval.backtest` does, bit for bit
(the same artifact's run, the same bars), also across a restart in the middle, a killed
process, and a kill between the audit record and the state write."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from eval.backtest import walk_policy
from hierarchy.decision_log import read_decision_log
from learners.run.folder import RunFolder
from learners.run.restore import restore
from service.artifact import load_artifact
from service.audit import verify
from service.engine import DecisionService

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backtest(trained_run, tmp_path_factory) -> list[dict]:
    """The backtest's decision log of the run's hierarchy on the test split."""
    ws, policies = restore(RunFolder(trained_run).policy_checkpoint("hierarchy"))
    log = tmp_path_factory.mktemp("backtest") / "decisions.jsonl"
    walk_policy(ws, policies, "hierarchy", "test", decision_log=log)
    return read_decision_log(log)


def serve(artifact, bars, state, restart_at=None) -> list[dict]:
    service, decisions = DecisionService(load_artifact(artifact), state), []
    for k, bar in enumerate(bars):
        if k == restart_at:
            service.close()
            service = DecisionService(load_artifact(artifact), state)
        decisions.append(service.on_bar(bar))
    service.close()
    return decisions


def assert_same_decisions(backtest: list[dict], decisions: list[dict], symbols: tuple[str, ...]) -> None:
    """Every backtest bar's decision and fill equal the service's, bit for bit."""
    assert len(decisions) == len(backtest) + 1              # the service decides on the split's last bar too
    for k, record in enumerate(backtest):
        decided, filled = decisions[k], decisions[k + 1]
        assert decided["status"] == "decided" and decided["timestamp"] == record["timestamp"]
        for key in ("target_weights", "signals"):
            assert [decided[key][s] for s in symbols] == [record[key][s] for s in symbols], (k, key)
        assert decided["allocation"] == record["allocation"] and decided["risk_appetite"] == record["risk_appetite"]
        assert decided["meta_acted"] == record["meta_acted"]
        assert [filled["filled"][s] for s in symbols] == [record["executed_weights"][s] for s in symbols], k
        assert filled["equity"] == record["equity"], k


def test_the_service_decides_as_the_backtest_bit_for_bit(artifact, bars, backtest, tmp_path):
    decisions = serve(artifact, bars, tmp_path / "state", restart_at=len(bars) // 2)
    assert_same_decisions(backtest, decisions, load_artifact(artifact).symbols)
    assert verify(tmp_path / "state" / "audit.jsonl")[0] == len(bars)


def test_a_killed_process_restarts_and_decides_the_same(artifact, bars, tmp_path):
    """SIGKILL the replaying service mid-split, start it again: the audit log holds every bar
    once, with the decisions of an uninterrupted run."""
    reference = serve(artifact, bars, tmp_path / "reference")
    command = [sys.executable, "-m", "service.serve", f"artifact={artifact}", f"bars={artifact}/bars_test.jsonl",
               f"state={tmp_path / 'state'}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for _ in range(len(bars) // 2 + 1):                     # the banner, then half the bars' lines
        process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait()
    taken = DecisionService(load_artifact(artifact), tmp_path / "state").bars
    assert 0 < taken < len(bars)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert verify(tmp_path / "state" / "audit.jsonl")[0] == len(bars)
    logged = [json.loads(line)["record"] for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [r["timestamp"] for r in logged] == [b["timestamp"] for b in reference]
    for record, decision in zip(logged, reference):
        assert record == {k: v for k, v in decision.items() if k != "service_ms"}


def test_a_kill_between_the_audit_record_and_the_state_is_not_logged_twice(artifact, bars, tmp_path, monkeypatch):
    reference = serve(artifact, bars[:12], tmp_path / "reference")
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    for bar in bars[:7]:
        service.on_bar(bar)
    monkeypatch.setattr(service, "_save", lambda: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
    with pytest.raises(KeyboardInterrupt):
        service.on_bar(bars[7])                             # logged, then killed before the state was written
    service.close()
    monkeypatch.undo()
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    assert service.bars == 7 and service.unsaved is not None
    assert "send that bar again first" in service.on_bar(bars[8])["reason"]
    decisions = [service.on_bar(bar) for bar in bars[7:12]]
    service.close()
    assert verify(tmp_path / "state" / "audit.jsonl")[0] == 13          # 12 decisions and the refusal
    strip = lambda d: {k: v for k, v in d.items() if k != "service_ms"}
    assert [strip(d) for d in decisions] == [strip(d) for d in reference[7:12]]


def test_replay_at_a_set_speed_paces_the_bars(artifact, tmp_path):
    first = (artifact / "bars_test.jsonl").read_text().splitlines()[:5]
    (tmp_path / "five.jsonl").write_text("\n".join(first) + "\n")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "service.serve", f"artifact={artifact}",
                           f"bars={tmp_path / 'five.jsonl'}", f"state={tmp_path / 'state'}", "speed=4"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" decided ") == 5 and time.perf_counter() - started >= 1.0
    assert np.isfinite(json.loads(done.stdout.splitlines()[-1].split("replayed; ")[1])["equity"])
