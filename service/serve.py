"""Serve an artifact: bars replayed from a file, or received over HTTP on localhost.

    python -m service.serve artifact=<folder> bars=<bars.jsonl> [speed=0] [state=<folder>] [rules=<yaml>]
    python -m service.serve artifact=<folder> [port=8765] [state=<folder>] [rules=<yaml>]

Replay: one JSON bar per line (as `service.export` writes them), at `speed` bars a second (0:
as fast as the service takes them), one line printed per decision; bars the state has already
taken are skipped, so a killed replay started again continues where it stopped. HTTP (the
standard library's server: one bar at a time is the service's nature, so an async framework
would add a dependency and nothing else):

    POST /bar                 a bar -> its decision (target weights, orders, refusals) or refusal
    POST /kill-switch/reset   trade again after the kill switch fired ({"note": ...})
    GET  /status              bars taken, last bar, equity, kill switch, audit head

The state (default `<artifact>/state`) holds state.bin.0/.1 and the audit log audit.jsonl
(`python -m service.audit <state>/audit.jsonl` verifies it).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import torch
import yaml
from omegaconf import MISSING

from service.artifact import ServiceConfig, load_artifact, typed
from service.cli import parse_command_line
from service.engine import DecisionService


@dataclass
class ServeConfig:
    """Serve a policy artifact (see `service.serve`)."""

    artifact: str = MISSING
    bars: str = ""          # a JSONL file of bars to replay; empty: serve HTTP
    speed: float = 0.0      # replay: bars a second, 0 as fast as possible
    state: str = ""         # default: <artifact>/state
    rules: str = ""         # a YAML ServiceConfig replacing the artifact's rules
    port: int = 8765        # HTTP on 127.0.0.1; 0 picks a free port (printed)


def open_service(config: ServeConfig) -> DecisionService:
    artifact = load_artifact(config.artifact)
    rules = typed(ServiceConfig, yaml.safe_load(Path(config.rules).read_text()) or {}, config.rules) \
        if config.rules else None
    return DecisionService(artifact, Path(config.state) if config.state else Path(config.artifact) / "state", rules)


def summary(response: dict) -> str:
    """One line of a response."""
    if response["status"] == "refused":
        return f"REFUSED {response['reason']}"
    orders = " ".join(f"{o['symbol']}{'+' if o['side'] == 'buy' else '-'}{o['notional']:.0f}"
                      for o in response["orders"])
    refused = [f"{r['symbol']}:{r['rule']}" for r in response["refusals"]]
    refused = f" refused={refused}" if refused else ""
    kill = f" KILL SWITCH: {response['kill_switch']}" if response["kill_switch"] else ""
    return (f"{response['timestamp']} {response['status']} equity={response['equity']:.2f} "
            f"orders=[{orders}]{refused}{kill} ({response['service_ms']:.2f} ms)")


def replay(service: DecisionService, path: Path, speed: float) -> int:
    """Send every bar of `path` after the state's last one; returns how many were sent."""
    sent = 0
    with path.open() as file:
        for number, line in enumerate(file, start=1):
            try:
                message = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON bar ({error})") from None
            if pd.Timestamp(message.get("timestamp")).value <= service.last_stamp:
                continue
            started = time.perf_counter()
            print(summary(service.on_bar(message)), flush=True)
            sent += 1
            if speed > 0:
                time.sleep(max(0.0, 1.0 / speed - (time.perf_counter() - started)))
    return sent


def handler(service: DecisionService) -> type[BaseHTTPRequestHandler]:
    """The request handler of `service`'s HTTP endpoint: connections on their own threads,
    requests one at a time (the service takes one bar after another)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"           # keep-alive: a client sends bar after bar on one connection
        disable_nagle_algorithm = True          # headers and body leave at once, no delayed-ACK stall

        def _reply(self, code: int, content: dict) -> None:
            body = json.dumps(content, allow_nan=False).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> dict | None:
            try:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            except json.JSONDecodeError as error:
                self._reply(400, {"status": "refused", "reason": f"not JSON: {error}"})
                return None

        def do_POST(self) -> None:
            if self.path not in ("/bar", "/kill-switch/reset"):
                self._reply(404, {"error": f"no endpoint {self.path}: POST /bar, POST /kill-switch/reset"})
                return
            message = self._body()
            if message is None:
                return
            with lock:
                response = service.on_bar(message) if self.path == "/bar" \
                    else service.reset_kill_switch(str(message.get("note", "")))
            self._reply(422 if response.get("status") == "refused" else 200, response)

        def do_GET(self) -> None:
            if self.path != "/status":
                self._reply(404, {"error": f"no endpoint {self.path}: GET /status"})
                return
            with lock:
                status = service.status()
            self._reply(200, status)

        def log_message(self, format: str, *args) -> None:   # the audit log is the record, not stderr
            pass

    return Handler


def serve_http(service: DecisionService, port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), handler(service))
    print(f"service.serve: listening on http://127.0.0.1:{server.server_address[1]} (POST /bar)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main() -> None:
    config = parse_command_line(ServeConfig, sys.argv[1:], "service.serve")
    torch.set_num_threads(1)                    # one bar at a time through small networks: threads only add latency
    try:
        service = open_service(config)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"service.serve: {error}")
    print(f"service.serve: artifact {service.artifact.content_hash[:12]} from {service.artifact.path}, "
          f"state {service.state_file.path.parent}: {service.bars} bars taken, last {service.status()['last_bar']}",
          flush=True)
    try:
        if config.bars:
            sent = replay(service, Path(config.bars), config.speed)
            print(f"service.serve: {sent} bars replayed; {json.dumps(service.status())}")
        else:
            serve_http(service, config.port)
    except ValueError as error:
        sys.exit(f"service.serve: {error}")
    finally:
        service.close()


if __name__ == "__main__":
    main()
