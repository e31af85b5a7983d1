"""The benchmark script runs end to end and writes its rows."""

import json

from risk import bench


def test_bench_writes_a_row_per_operation(tmp_path, capsys):
    output = tmp_path / "bench" / "risk.json"
    bench.main(["--output", str(output), "--burst-seconds", "0.001"])
    rows = json.loads(output.read_text())
    assert {(row["op"], row["impl"], tuple(row["shape"])) for row in rows} >= {
        ("portfolio_var", "risk", (1, 8)), ("portfolio_var", "scipy.stats", (1, 8)),
        ("overlay", "risk", (1024, 8)), ("overlay", "risk", (1, 500))}
    assert all(row["seconds_per_call"] > 0 for row in rows)
    assert list(output.parent.iterdir()) == [output]                # no temporary file left
    assert "portfolio_var" in capsys.readouterr().out
