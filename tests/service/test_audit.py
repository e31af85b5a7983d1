"""The audit log's chain detects an edited, removed or reordered record; the state file keeps
the last intact state when a write is cut short; array files round-trip."""

import json

import numpy as np
import pytest

from service.arrays import StateFile, read_arrays, write_arrays
from service.audit import AuditLog, last_line, verify


@pytest.fixture
def log(tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    for k in range(6):
        audit.append({"type": "decision", "bar": k, "weights": {"EURUSD": 0.1 * k, "SPX500": float("nan")}})
    audit.close()
    return tmp_path / "audit.jsonl"


def rewrite(path, lines):
    path.write_text("".join(lines))


def test_an_intact_log_verifies_and_reopens_at_its_head(log):
    count, head = verify(log)
    assert count == 6
    reopened = AuditLog(log)
    assert reopened.seq == 5 and reopened.head == head and reopened.last["bar"] == 5
    reopened.append({"type": "refusal", "reason": "duplicate"})
    reopened.close()
    assert verify(log)[0] == 7
    assert json.loads(last_line(log))["record"]["reason"] == "duplicate"


def test_an_edited_record_is_named(log):
    lines = log.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"bar":3', '"bar":33')
    rewrite(log, lines)
    with pytest.raises(ValueError, match=r"audit.jsonl:4: the record does not match its hash \(edited\)"):
        verify(log)


def test_a_removed_record_is_named(log):
    lines = log.read_text().splitlines(keepends=True)
    rewrite(log, lines[:2] + lines[3:])
    with pytest.raises(ValueError, match=r"audit.jsonl:3: record seq 3 where 2 was due \(a record was removed"):
        verify(log)


def test_reordered_records_are_named(log):
    lines = log.read_text().splitlines(keepends=True)
    rewrite(log, lines[:2] + [lines[3], lines[2]] + lines[4:])
    with pytest.raises(ValueError, match=r"audit.jsonl:3: record seq 3 where 2 was due .*reordered"):
        verify(log)


def test_a_renumbered_removal_breaks_the_hashes(log):
    """Removing a record and renumbering the rest still breaks the chain: each record's hash
    covers its sequence number and its predecessor's hash."""
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    del entries[2]
    for k, entry in enumerate(entries):
        entry["seq"] = k
    rewrite(log, [json.dumps(e) + "\n" for e in entries])
    with pytest.raises(ValueError, match=r"audit.jsonl:3: its previous hash is not line 2's"):
        verify(log)


def test_a_cut_short_state_write_leaves_the_last_intact_state(tmp_path):
    state = StateFile(tmp_path / "state.bin")
    for k in range(3):
        state.write({"bar": np.array(k), "weights": np.full(4, 0.25 * k), "flag": np.array([True, False])})
    state.close()
    newest = state.slots[2 % 2]
    newest.write_bytes(newest.read_bytes()[:-5])          # the last write cut short
    reread = StateFile(tmp_path / "state.bin")
    arrays = reread.read()
    assert int(arrays["bar"]) == 1 and arrays["bar"].shape == () and reread.seq == 1
    np.testing.assert_array_equal(arrays["weights"], np.full(4, 0.25))
    reread.write({"bar": np.array(5), "weights": np.zeros(4), "flag": np.array([False, False])})
    assert int(StateFile(tmp_path / "state.bin").read()["bar"]) == 5


def test_array_files_round_trip_and_refuse_foreign_bytes(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.float32(1.5) * np.ones(2, np.float32),
              "c": np.array(3.25)}
    write_arrays(tmp_path / "x.bin", arrays)
    back = read_arrays(tmp_path / "x.bin")
    for name, value in arrays.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)
    (tmp_path / "y.bin").write_bytes(b"not arrays")
    with pytest.raises(ValueError, match="y.bin: not an array file"):
        read_arrays(tmp_path / "y.bin")


def test_the_verifier_command_exits_nonzero_on_a_broken_chain(log):
    import subprocess
    import sys

    intact = subprocess.run([sys.executable, "-m", "service.audit", str(log)], capture_output=True, text=True)
    assert intact.returncode == 0 and "intact, 6 records" in intact.stdout
    lines = log.read_text().splitlines(keepends=True)
    rewrite(log, lines[:4] + lines[5:])
    broken = subprocess.run([sys.executable, "-m", "service.audit", str(log)], capture_output=True, text=True)
    assert broken.returncode == 1 and "BROKEN" in broken.stderr and "audit.jsonl:5" in broken.stderr
