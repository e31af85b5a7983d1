"""Weight composition, domain correlations, coordination signals and the decision log."""

import numpy as np
import pytest

from hierarchy.decision_log import DecisionLog, read_decision_log
from hierarchy.messages import AllocationMessage, as_record, compose_weights, coordination_signals, domain_correlations

DOMAIN_INDEX = np.array([0, 0, 0, 1, 1, 2, 2, 2])


def test_compose_weights_follows_the_design_formula():
    rng = np.random.default_rng(0)
    signals = rng.uniform(-1, 1, size=(5, 8))
    allocation = rng.dirichlet(np.ones(3), size=5)
    appetite = rng.uniform(0, 1, size=5)
    w = compose_weights(signals, allocation, appetite, DOMAIN_INDEX, max_leverage=2.0)
    sizes = np.array([3, 3, 3, 2, 2, 3, 3, 3])
    expected = 2.0 * appetite[:, None] * allocation[:, DOMAIN_INDEX] * signals / sizes
    np.testing.assert_allclose(w, expected)
    assert (np.abs(w).sum(1) <= 2.0 * appetite + 1e-12).all()          # gross <= L * rho
    full = compose_weights(np.ones((1, 8)), np.full((1, 3), 1 / 3), np.ones(1), DOMAIN_INDEX, 1.0)
    assert np.abs(full).sum() == pytest.approx(1.0)


def test_domain_correlations_and_signals():
    cov = np.eye(8) * 1e-4
    cov[0, 3] = cov[3, 0] = -0.9e-4                                      # EURUSD hedges gold
    w = np.zeros((1, 8))
    w[0, 0], w[0, 3] = 1.0, 1.0
    corr = domain_correlations(w, cov, DOMAIN_INDEX, 3)
    assert corr.shape == (1, 3, 3) and corr[0, 0, 1] == pytest.approx(-0.9)
    assert corr[0, 0, 2] == 0.0                                          # equity holds nothing
    signals = coordination_signals(corr[0], ("forex", "commodities", "equity"))
    assert len(signals) == 1 and signals[0].kind == "hedge" and signals[0].domains == ("forex", "commodities")
    w[0, 3] = -1.0                                                       # now both bets align
    assert coordination_signals(domain_correlations(w, cov, DOMAIN_INDEX, 3)[0],
                                ("forex", "commodities", "equity"))[0].kind == "concentrate"


def test_decision_log_writes_jsonl_atomically(tmp_path):
    path = tmp_path / "eval" / "decisions.jsonl"
    with DecisionLog(path) as log:
        log.write({"t": np.int64(3), "w": np.array([0.5, np.nan]),
                   "msg": as_record(AllocationMessage("fx", 0.3, 0.9))})
        assert not path.exists() and path.with_name("decisions.jsonl.partial").exists()
    rows = read_decision_log(path)
    assert rows == [{"t": 3, "w": [0.5, None], "msg": {"type": "AllocationMessage", "domain": "fx",
                                                        "allocation": 0.3, "risk_appetite": 0.9}}]
    with pytest.raises(RuntimeError):
        with DecisionLog(tmp_path / "bad.jsonl") as log:
            log.write({"a": 1})
            raise RuntimeError("interrupted")
    assert not (tmp_path / "bad.jsonl").exists() and (tmp_path / "bad.jsonl.partial").exists()
