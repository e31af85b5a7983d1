"""The consensus coordinator: the weight update rule, the vote on hand-made proposals (shares,
threshold, disagreement and its exposure cut, the manual-review flag), the voters' proposals, and
the coordinator in the decision pipeline with its votes and rationale in the messages."""

import numpy as np
import pytest
import torch

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from hierarchy.consensus import (
    ConsensusConfig,
    PerformanceWeights,
    Proposals,
    overlay_proposal,
    specialist_proposals,
    vote,
    voter_returns,
)
from hierarchy.system import HierarchicalSystem, HierarchyConfig
from risk.env_hook import risk_env
from risk.limits import RiskLimits


def proposals(allocation, appetite, confidence) -> Proposals:
    return Proposals(np.array([allocation], dtype=float), np.array([appetite], dtype=float),
                     np.array([confidence], dtype=float))


def test_weights_follow_the_ewma_sharpe_ratio_by_the_stated_rule():
    weights = PerformanceWeights(num_voters=3, halflife=1.0, temperature=0.5)   # lambda = 1/2
    weights.bind(2)
    assert np.allclose(weights.weights(), 1 / 3)                                # no record yet: equal
    everyone = np.ones(2, dtype=bool)
    weights.update(np.array([[0.02, -0.01, 0.0], [0.0, 0.0, 0.0]]), everyone)
    weights.update(np.array([[0.04, -0.03, 0.0], [0.0, 0.0, 0.0]]), everyone)
    # voter 0: m = 0.01 then 0.025; s = 0.5 (0 + 0.5 * 0.02^2) = 1e-4, then 0.5 (1e-4 + 0.5 * 0.03^2) = 2.75e-4
    assert weights.mean[0, 0] == pytest.approx(0.025) and weights.var[0, 0] == pytest.approx(2.75e-4)
    score = weights.mean[0] / np.sqrt(weights.var[0] + 1e-12) / 0.5
    assert np.allclose(weights.weights()[0], np.exp(score) / np.exp(score).sum())
    assert weights.weights()[0].argmax() == 0 and weights.weights()[0].argmin() == 1
    weights.update(np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]), np.array([False, True]))
    assert weights.mean[0, 0] == pytest.approx(0.025)                            # masked env unchanged
    weights.restart(np.array([0]))
    assert np.allclose(weights.weights()[0], 1 / 3)


def test_the_overlay_votes_with_the_books_loss():
    returns = voter_returns(np.array([[0.01, -0.03]]))
    assert np.allclose(returns, [[0.01, -0.03, 0.02]])


def test_the_vote_combines_weighted_confident_proposals():
    # two domains; voter 0 wants all in domain 0 at full risk, voter 1 equal at half risk
    p = proposals([[1.0, 0.0], [0.5, 0.5]], [1.0, 0.5], [1.0, 0.5])
    verdict = vote(p, np.array([[0.5, 0.5]]), threshold=0.1, review=0.9)
    # votes w c = 0.5, 0.25: strength 0.75, shares 2/3, 1/3
    assert verdict.strength[0] == pytest.approx(0.75) and np.allclose(verdict.shares, [[2 / 3, 1 / 3]])
    assert np.allclose(verdict.allocation, [[2 / 3 + 1 / 6, 1 / 6]])
    rho = 2 / 3 + 1 / 6
    spread = np.array([2 * (1 / 6) ** 2 + (1 - rho) ** 2, 2 * (1 / 3) ** 2 + (0.5 - rho) ** 2])
    delta = (np.array([2 / 3, 1 / 3]) * spread).sum() / (1 - 1 / 2 + 1 / 4)
    assert verdict.disagreement[0] == pytest.approx(delta)
    assert verdict.appetite[0] == pytest.approx(rho * (1 - delta))
    assert not verdict.held[0] and not verdict.review[0]


def test_below_the_threshold_the_book_holds_and_high_disagreement_is_flagged():
    p = proposals([[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0], [0.2, 0.2])
    held = vote(p, np.array([[0.5, 0.5]]), threshold=0.3, review=0.5)
    assert held.held[0] and not held.review[0] and held.strength[0] == pytest.approx(0.2)
    split = vote(p, np.array([[0.5, 0.5]]), threshold=0.1, review=0.5)
    # opposite corners with equal shares: the largest disagreement there is
    assert split.disagreement[0] == pytest.approx(1.0) and split.review[0] and split.appetite[0] == 0.0
    agreed = vote(proposals([[0.3, 0.7], [0.3, 0.7]], [0.8, 0.8], [1.0, 1.0]), np.array([[0.5, 0.5]]), 0.1, 0.5)
    assert agreed.disagreement[0] == pytest.approx(0.0) and agreed.appetite[0] == pytest.approx(0.8)


def test_the_voters_proposals():
    allocation, appetite = specialist_proposals(np.array([[0.0, 1.0, 0.5]]))
    assert np.allclose(allocation[0, 0], 1 / 3) and np.allclose(allocation[0, 1], [0, 1, 0])
    assert np.allclose(allocation[0, 2], [1 / 6, 1 / 6, 1 / 6 + 0.5]) and np.allclose(appetite, 1.0)
    allocation, appetite, confidence = overlay_proposal(np.array([0.0, 0.075, 0.3]), 0.15,
                                                        np.array([[0.01, 0.02], [0.01, 0.02], [0.0, 0.02]]))
    assert np.allclose(allocation, [[2 / 3, 1 / 3], [2 / 3, 1 / 3], [0.5, 0.5]])
    assert np.allclose(appetite, [1.0, 0.5, 0.0]) and np.allclose(confidence, [0.0, 0.5, 1.0])


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=0))


def walk(market, consensus: ConsensusConfig, bars: int = 12):
    env = risk_env(market, EnvConfig(episode_length=60), RiskLimits(), num_envs=3, seed=0)
    env.reset(seed=0)
    torch.manual_seed(0)
    system = HierarchicalSystem(env, HierarchyConfig(meta_period=3, coordinator="consensus", consensus=consensus))
    system.eval()
    decisions = []
    for _ in range(bars):
        decisions.append(system.decide(env, deterministic=True))
        env.step(decisions[-1].target_weights)
    return env, system, decisions


def test_the_consensus_coordinator_steers_the_book_and_logs_its_votes(market):
    env, system, decisions = walk(market, consensus=ConsensusConfig(threshold=0.0, review=0.0))
    voted = [d for d in decisions if d.verdict is not None]
    assert len(voted) == 4 and all(d.meta_acted.all() for d in voted)        # every 3 bars, in every env
    last = voted[-1]
    assert np.allclose(last.allocation, last.verdict.allocation) and np.allclose(last.appetite, last.verdict.appetite)
    assert np.allclose(last.allocation.sum(1), 1.0) and ((last.appetite >= 0) & (last.appetite <= 1)).all()
    records = system.messages(last, env, 1)
    votes = [r for r in records if r["type"] == "ConsensusVote"]
    assert [v["voter"] for v in votes] == ["forex", "commodities", "equity", "risk_overlay"]
    assert sum(v["weight"] for v in votes) == pytest.approx(1.0)
    decision = next(r for r in records if r["type"] == "ConsensusDecision")
    assert decision["manual_review"] and "manual review" in decision["rationale"] and not decision["held"]
    # between votes the messages carry no consensus
    assert not [r for r in system.messages(decisions[1], env, 1) if r["type"].startswith("Consensus")]


def test_a_threshold_above_every_vote_holds_the_book_at_its_start(market):
    env, system, decisions = walk(market, consensus=ConsensusConfig(threshold=1.0))
    assert all(d.verdict.held.all() for d in decisions if d.verdict is not None)
    assert np.allclose(decisions[-1].allocation, 1 / 3) and np.allclose(decisions[-1].appetite, 1.0)
    records = system.messages(decisions[0], env, 0)
    assert "the book holds" in next(r for r in records if r["type"] == "ConsensusDecision")["rationale"]


def test_the_consensus_walk_is_deterministic(market):
    _, _, first = walk(market, consensus=ConsensusConfig())
    _, _, again = walk(market, consensus=ConsensusConfig())
    assert all(np.array_equal(a.target_weights, b.target_weights) for a, b in zip(first, again))
