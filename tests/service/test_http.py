"""The HTTP endpoint under the bounded load test: every bar answered with a decision, the state
and the audit log complete; a malformed body and an unknown path get clear errors."""

import http.client
import json
import threading
from http.server import ThreadingHTTPServer

import pytest

from service.artifact import load_artifact
from service.engine import DecisionService
from service.loadtest import LoadTestConfig, run
from service.serve import handler

pytestmark = pytest.mark.slow


def test_the_load_test_loses_nothing(artifact, tmp_path):
    figures = run(LoadTestConfig(artifact=str(artifact), bars=str(artifact / "bars_test.jsonl"), count=40,
                                 out=str(tmp_path / "load.json")))
    assert figures["lost"] == 0 and figures["decided"] == figures["state_bars"] == figures["audit_records"] == 40
    assert figures["decisions_per_s"] > 0 and figures["service_ms"]["p99"] >= figures["service_ms"]["p50"] > 0
    assert json.loads((tmp_path / "load.json").read_text())["bars"] == 40


def test_endpoints(artifact, bars, tmp_path):
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(service))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)

        def call(method, path, body=b""):
            connection.request(method, path, body=body)
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        status, decided = call("POST", "/bar", json.dumps(bars[0]).encode())
        assert status == 200 and decided["status"] == "decided"
        assert set(decided["target_weights"]) == set(bars[0]["prices"])
        assert call("POST", "/bar", json.dumps(bars[0]).encode())[1]["reason"].startswith("duplicate")
        status, refused = call("POST", "/bar", b"{not json")
        assert status == 400 and "not JSON" in refused["reason"]
        assert call("GET", "/nowhere")[0] == 404
        status, state = call("GET", "/status")
        assert status == 200 and state["bars"] == 1 and state["audit_records"] == 2
        assert call("POST", "/kill-switch/reset", b'{"note": "test"}')[1]["type"] == "kill_switch_reset"
        connection.close()
    finally:
        server.shutdown()
        server.server_close()
        service.close()
