"""The service on its own: bad input is refused with a reason, logged, and leaves the state as
it was; the kill switch flattens and holds until reset (stale data, a feature NaN, drawdown);
compliance refusals hold the instrument; a changed artifact is refused naming the file."""

import copy
import json
import shutil

import pandas as pd
import pytest

from service.artifact import ServiceConfig, load_artifact
from service.audit import verify
from service.compliance import ComplianceRules
from service.engine import DecisionService
from service.export import ExportConfig, export

pytestmark = pytest.mark.slow


def state_without_log_position(service):
    return {k: v.copy() for k, v in service.state_dict().items() if k != "audit_seq"}


def shifted(bar, days):
    moved = copy.deepcopy(bar)
    moved["timestamp"] = (pd.Timestamp(bar["timestamp"]) + pd.Timedelta(days=days)).isoformat()
    return moved


def test_bad_input_is_refused_logged_and_changes_nothing(artifact, bars, tmp_path):
    reference = DecisionService(load_artifact(artifact), tmp_path / "reference")
    expected = [reference.on_bar(bar) for bar in bars[:4]]
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    for bar in bars[:3]:
        service.on_bar(bar)
    before = state_without_log_position(service)
    nan_price, unknown, missing, bad_range = (copy.deepcopy(bars[3]) for _ in range(4))
    nan_price["prices"]["EURUSD"]["close"] = float("nan")
    unknown["prices"]["BTCUSD"] = dict(bars[3]["prices"]["EURUSD"])
    del missing["prices"]["SPX500"]
    bad_range["prices"]["XAUUSD"]["high"] = bad_range["prices"]["XAUUSD"]["low"] / 2
    cases = {"duplicate": bars[2], "out of order": bars[1], "EURUSD.close = nan": nan_price,
             "unknown symbol(s) ['BTCUSD']": unknown, "lacks ['SPX500']": missing, "gap": shifted(bars[3], 10),
             "outside low": bad_range, "timestamp": {"timestamp": "yesterday", "prices": {}}}
    for reason, message in cases.items():
        response = service.on_bar(message)
        assert response["status"] == "refused" and reason in response["reason"], (reason, response)
    after = state_without_log_position(service)
    assert before.keys() == after.keys()
    assert [k for k in before if before[k].shape != after[k].shape or before[k].tobytes() != after[k].tobytes()] == []
    logged = [json.loads(line)["record"] for line in (tmp_path / "state" / "audit.jsonl").read_text().splitlines()]
    assert [r["type"] for r in logged] == ["decision"] * 3 + ["refusal"] * len(cases)
    assert DecisionService(load_artifact(artifact), tmp_path / "state").bars == 3      # a restart sees the same
    decided = service.on_bar(bars[3])
    assert {k: v for k, v in decided.items() if k != "service_ms"} == \
        {k: v for k, v in expected[3].items() if k != "service_ms"}
    assert verify(tmp_path / "state" / "audit.jsonl")[0] == 3 + len(cases) + 1


def test_stale_data_fires_the_kill_switch_which_flattens_and_holds(artifact, bars, tmp_path):
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    for bar in bars[:3]:
        assert service.on_bar(bar)["status"] == "decided"
    stale_bars = service.config.kill_switch.stale_bars
    responses = []
    for k in range(stale_bars + 2):                         # the same prices, new stamps
        repeated = copy.deepcopy(bars[3 + k])
        repeated["prices"] = bars[2]["prices"]
        responses.append(service.on_bar(repeated))
    assert [r["status"] for r in responses[:stale_bars - 1]] == ["decided"] * (stale_bars - 1)
    halted = responses[stale_bars - 1]
    assert halted["status"] == "halted" and halted["kill_switch"].startswith("stale data")
    assert all(o["target_weight"] == 0.0 for o in halted["orders"])
    assert responses[-1]["status"] == "halted" and all(w == 0.0 for w in responses[-1]["weights"].values())
    restarted = DecisionService(load_artifact(artifact), tmp_path / "state")
    assert restarted.halted.startswith("stale data")       # the switch survives a restart
    restarted.reset_kill_switch("checked the feed")
    assert restarted.on_bar(bars[3 + stale_bars + 2])["status"] == "decided"


def test_a_feature_nan_fires_the_kill_switch(artifact, bars, tmp_path):
    service = DecisionService(load_artifact(artifact), tmp_path / "state")
    service.on_bar(bars[0])
    no_print = copy.deepcopy(bars[1])
    no_print["sentiment"]["EURUSD"] = None
    response = service.on_bar(no_print)
    assert response["status"] == "halted" and "EURUSD.sentiment_net" in response["kill_switch"]


def test_drawdown_fires_the_kill_switch(artifact, bars, tmp_path):
    config = ServiceConfig()
    config.kill_switch.max_drawdown = 1e-9
    service = DecisionService(load_artifact(artifact), tmp_path / "state", config)
    statuses = [service.on_bar(bar)["status"] for bar in bars[:30]]
    assert "halted" in statuses
    first = statuses.index("halted")
    assert set(statuses[first:]) == {"halted"} and "drawdown" in service.halted


def test_compliance_refusals_hold_the_instrument(artifact, bars, tmp_path):
    artifact_ = load_artifact(artifact)
    config = ServiceConfig(compliance=ComplianceRules(restricted=list(artifact_.symbols[:3]),
                                                      max_order_weight=0.02))
    service = DecisionService(artifact_, tmp_path / "state", config)
    responses = [service.on_bar(bar) for bar in bars[:10]]
    rules = {r["rule"] for response in responses for r in response["refusals"]}
    assert rules and rules <= {"restricted", "max_order_weight"}
    for response in responses[1:]:
        for symbol in artifact_.symbols[:3]:                # restricted from flat: never traded
            assert response["filled"][symbol] == 0.0
        for order in response["orders"]:
            assert abs(order["target_weight"] - order["current_weight"]) <= 0.02


def test_a_changed_artifact_is_refused_naming_the_file(artifact, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(artifact, changed)
    specialist = next(changed.glob("specialist_*.pt"))
    data = bytearray(specialist.read_bytes())
    data[-10] ^= 1
    specialist.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{specialist.name}: does not match the manifest's hash"):
        load_artifact(changed)
    manifest = json.loads((changed / "manifest.json").read_text())
    manifest["config"]["risk"]["max_gross_leverage"] = 10.0
    (changed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest does not match its content hash"):
        load_artifact(changed)
    (changed / "meta.pt").unlink()
    with pytest.raises((FileNotFoundError, ValueError)):
        load_artifact(changed)


def test_export_refuses_an_existing_folder_and_a_state_of_another_artifact(artifact, trained_run, tmp_path):
    with pytest.raises(FileExistsError, match="exists"):
        export(ExportConfig(ckpt=str(trained_run), out=str(artifact)))
    other = export(ExportConfig(ckpt=str(trained_run), out=str(tmp_path / "other"), split="validation"))
    service = DecisionService(load_artifact(other), tmp_path / "state")
    assert service.on_bar(json.loads((other / "bars_validation.jsonl").read_text().splitlines()[0]))["status"] == \
        "decided"
    service.close()
    with pytest.raises(ValueError, match="belongs to artifact"):
        DecisionService(load_artifact(artifact), tmp_path / "state")
