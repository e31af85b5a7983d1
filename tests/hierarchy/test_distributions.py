"""The allocation distribution's log-density equals a numerical change of variables."""

import math

import pytest
import torch

from hierarchy.distributions import AllocationDistribution, pack_action


@pytest.mark.parametrize("n_domains", [1, 2, 3, 5])
def test_log_prob_matches_numerical_jacobian(n_domains):
    torch.manual_seed(0)
    mean = torch.randn(4, n_domains, dtype=torch.float64) * 0.5
    log_std = torch.randn(4, n_domains, dtype=torch.float64) * 0.3 - 0.5
    dist = AllocationDistribution(mean, log_std, logit_scale=3.0)
    z = mean + log_std.exp() * torch.randn_like(mean)

    def free_coordinates(latent):                        # (D,) -> (allocation_1..D-1, appetite)
        allocation, appetite = dist.to_action(torch.tanh(latent)[None])
        return torch.cat([allocation[0, :-1], appetite])

    log_prob = dist.log_prob_of_latent(z)
    for b in range(4):
        jacobian = torch.autograd.functional.jacobian(free_coordinates, z[b])
        gaussian = torch.distributions.Normal(mean[b], log_std[b].exp()).log_prob(z[b]).sum()
        expected = gaussian - torch.linalg.slogdet(jacobian).logabsdet
        assert log_prob[b].item() == pytest.approx(expected.item(), rel=1e-9)


def test_samples_live_on_the_simplex_and_are_reparameterised():
    mean = torch.zeros(256, 3, requires_grad=True)
    dist = AllocationDistribution(mean, torch.zeros(256, 3))
    allocation, appetite, log_prob = dist.rsample()
    assert torch.allclose(allocation.sum(-1), torch.ones(256)) and (allocation > 0).all()
    assert ((appetite > 0) & (appetite < 1)).all() and torch.isfinite(log_prob).all()
    (allocation[:, 0] + appetite).sum().backward()
    assert mean.grad is not None and mean.grad.abs().sum() > 0
    assert pack_action(allocation, appetite).shape == (256, 4)


def test_mode_of_zero_mean_is_equal_allocation_half_appetite():
    allocation, appetite = AllocationDistribution(torch.zeros(1, 4), torch.zeros(1, 4)).mode()
    assert torch.allclose(allocation, torch.full((1, 4), 0.25)) and appetite.item() == 0.5
    assert math.isclose(AllocationDistribution(torch.zeros(1, 1), torch.zeros(1, 1)).mode()[0].item(), 1.0)
