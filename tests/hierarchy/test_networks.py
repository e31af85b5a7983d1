"""Shapes, the specialist registry, and the meta-controller's outputs."""

import pytest
import torch

from hierarchy.networks import (
    SPECIALIST_TYPES,
    FlatPolicy,
    InstrumentHeads,
    MetaController,
    Specialist,
    build_specialists,
    register_specialist,
    tanh_mlp,
)

DOMAINS = {"forex": ("EURUSD", "GBPUSD", "USDJPY"), "commodities": ("XAUUSD", "WTIUSD"),
           "equity": ("SPX500", "NAS100", "US30")}


def test_meta_controller_outputs():
    torch.manual_seed(0)
    meta = MetaController(obs_dim=40, n_domains=3, hidden=32)
    obs = torch.randn(7, 40)
    allocation, appetite, log_prob = meta.act(obs)
    assert allocation.shape == (7, 3) and appetite.shape == (7,) and log_prob.shape == (7,)
    assert torch.allclose(allocation.sum(-1), torch.ones(7))
    q1, q2 = meta.q_values(obs, torch.cat([allocation, appetite[:, None]], -1))
    assert q1.shape == q2.shape == (7,) and not torch.equal(q1, q2)
    meta.eval()
    a1, r1, _ = meta.act(obs, deterministic=True)
    a2, r2, _ = meta.act(obs, deterministic=True)
    assert torch.equal(a1, a2) and torch.equal(r1, r2)


def test_specialists_from_the_universe():
    specialists = build_specialists(DOMAINS, {}, {"forex": 12, "commodities": 9, "equity": 12}, 6, 16)
    assert list(specialists) == ["forex", "commodities", "equity"]
    forex = specialists["forex"]
    assert forex.symbols == ("EURUSD", "GBPUSD", "USDJPY") and forex.heads.n == 3
    mean, log_std = forex(torch.randn(5, 12), torch.randn(5, 3, 6), torch.rand(5), torch.rand(5))
    assert mean.shape == (5, 3) and log_std.shape == (3,)
    assert forex.value(torch.randn(5, 12), torch.rand(5), torch.rand(5)).shape == (5,)


def test_registry_adds_a_type_by_one_class_and_rejects_unknowns():
    @register_specialist("wide_test")
    class WideSpecialist(Specialist):
        def __init__(self, domain, symbols, domain_obs_dim, instrument_obs_dim, hidden):
            super().__init__(domain, symbols, domain_obs_dim, instrument_obs_dim, hidden * 2)

    try:
        built = build_specialists(DOMAINS, {"equity": "wide_test"}, dict.fromkeys(DOMAINS, 4), 3, 8)
        assert isinstance(built["equity"], WideSpecialist) and type(built["forex"]) is Specialist
        with pytest.raises(KeyError, match="unknown type 'nope'"):
            build_specialists(DOMAINS, {"equity": "nope"}, dict.fromkeys(DOMAINS, 4), 3, 8)
        with pytest.raises(KeyError, match="not in the universe"):
            build_specialists(DOMAINS, {"crypto": "default"}, dict.fromkeys(DOMAINS, 4), 3, 8)
        with pytest.raises(KeyError, match="already registered"):
            register_specialist("wide_test")(WideSpecialist)
    finally:
        SPECIALIST_TYPES.pop("wide_test")


def test_flat_policy_shapes():
    flat = FlatPolicy(obs_dim=30, n_instruments=8, hidden=16)
    mean, log_std = flat(torch.randn(4, 30))
    assert mean.shape == (4, 8) and log_std.shape == (8,) and flat.value(torch.randn(4, 30)).shape == (4,)


def test_meta_controller_starts_at_equal_allocation_and_nearly_full_appetite():
    torch.manual_seed(0)
    meta = MetaController(obs_dim=40, n_domains=3, hidden=32).eval()
    allocation, appetite, _ = meta.act(torch.randn(64, 40), deterministic=True)
    assert torch.allclose(allocation, torch.full_like(allocation, 1 / 3), atol=0.02)
    assert torch.allclose(appetite, torch.full_like(appetite, 0.99), atol=0.005)


def test_batched_heads_equal_one_module_per_head():
    """The stacked heads compute what one `tanh_mlp` per instrument with the same weights does."""
    torch.manual_seed(0)
    n, in_dim, hidden, B = 3, 11, 16, 9
    heads = InstrumentHeads(n, in_dim, hidden)
    x = torch.randn(B, n, in_dim)
    expected = []
    for k in range(n):
        head = tanh_mlp(in_dim, hidden, 1, out_gain=0.01)
        for linear, stacked in zip([m for m in head if isinstance(m, torch.nn.Linear)], heads.layers):
            linear.weight.data.copy_(stacked.weight.data[k].T)
            linear.bias.data.copy_(stacked.bias.data[k, 0])
        expected.append(head(x[:, k]).squeeze(-1))
    torch.testing.assert_close(heads(x), torch.stack(expected, dim=-1), rtol=1e-6, atol=1e-7)
    # orthogonal initialisation per head, as layer_init gives each Linear
    w = heads.layers[1].weight.data[2]
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(hidden), rtol=1e-5, atol=1e-5)
    assert heads.layers[2].weight.abs().max() < 0.05 and not heads.layers[0].bias.any()
