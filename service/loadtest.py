"""A bounded load test of the HTTP service on localhost: a fresh service process, the bars of a
file sent one after another as fast as it answers them on one keep-alive connection, then the
check that nothing was lost (every bar answered with a decision, the state's bar count and the
audit log's records complete and its chain intact).

    python -m service.loadtest artifact=<folder> bars=<bars.jsonl> [count=0] [out=<json>]

Prints and writes (with `out`) decisions per second, and the p50 / p99 latency per bar both
round trip (client) and inside the service (`service_ms`: parsing, the streaming feature
update, the book, the decision, the overlay, compliance, the audit record and the state write).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from service.audit import verify
from service.cli import parse_command_line
from storage.atomic import write_json


@dataclass
class LoadTestConfig:
    """Load-test the HTTP service on localhost (see `service.loadtest`)."""

    artifact: str = MISSING
    bars: str = MISSING
    count: int = 0          # bars to send (0: every bar of the file)
    out: str = ""           # a JSON file for the figures


def run(config: LoadTestConfig) -> dict:
    """Start the service, send the bars, check them, stop it; returns the figures."""
    lines = Path(config.bars).read_text().splitlines()
    count = len(lines) if config.count <= 0 else config.count
    if count > len(lines):
        raise ValueError(f"count={count}: {config.bars} holds {len(lines)} bars")
    with tempfile.TemporaryDirectory() as state:
        server = subprocess.Popen([sys.executable, "-m", "service.serve", f"artifact={config.artifact}",
                                   f"state={state}", "port=0"], stdout=subprocess.PIPE, text=True)
        try:
            port = _port(server)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.connect()
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            round_trip, inside, statuses = [], [], []
            started = time.perf_counter()
            for line in lines[:count]:
                sent = time.perf_counter()
                connection.request("POST", "/bar", body=line.encode(), headers={"Content-Type": "application/json"})
                response = json.loads(connection.getresponse().read())
                round_trip.append(time.perf_counter() - sent)
                inside.append(response["service_ms"])
                statuses.append(response["status"])
            wall = time.perf_counter() - started
            connection.request("GET", "/status")
            status = json.loads(connection.getresponse().read())
        finally:
            server.terminate()
            server.wait(timeout=30)
        records, head = verify(Path(state) / "audit.jsonl")
    figures = {
        "bars": count, "wall_s": wall, "decisions_per_s": count / wall,
        "round_trip_ms": {"p50": float(np.percentile(round_trip, 50)) * 1e3,
                          "p99": float(np.percentile(round_trip, 99)) * 1e3},
        "service_ms": {"p50": float(np.percentile(inside, 50)), "p99": float(np.percentile(inside, 99))},
        "decided": statuses.count("decided"), "not_decided": count - statuses.count("decided"),
        "state_bars": status["bars"], "audit_records": records, "audit_intact": True, "audit_head": head,
        "lost": count - min(statuses.count("decided"), status["bars"], records)}
    if config.out:
        write_json(config.out, figures)
    return figures


def _port(server: subprocess.Popen) -> int:
    """The port the service prints once it listens."""
    for line in server.stdout:
        if "listening on http://127.0.0.1:" in line:
            return int(line.split("127.0.0.1:")[1].split()[0])
    raise RuntimeError(f"the service exited ({server.wait()}) before listening")


def main() -> None:
    config = parse_command_line(LoadTestConfig, sys.argv[1:], "service.loadtest")
    figures = run(config)
    print(f"service.loadtest: {figures['bars']} bars in {figures['wall_s']:.2f} s: "
          f"{figures['decisions_per_s']:.0f} decisions/s; per bar p50 {figures['service_ms']['p50']:.3f} ms, "
          f"p99 {figures['service_ms']['p99']:.3f} ms inside the service (round trip p50 "
          f"{figures['round_trip_ms']['p50']:.3f}, p99 {figures['round_trip_ms']['p99']:.3f} ms); "
          f"{figures['lost']} lost, audit {figures['audit_records']} records intact")
    if figures["lost"] or figures["not_decided"]:
        sys.exit("service.loadtest: bars were lost or not decided")


if __name__ == "__main__":
    main()
