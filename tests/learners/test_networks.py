"""The squashed Gaussian's log-probability against a numerical change of variables."""

import math

import torch
from torch.distributions import Normal

from learners.networks import ActorCritic, squashed_gaussian_log_prob, squashed_gaussian_sample


def test_squashed_log_prob_matches_numerical_density_of_tanh_u():
    mean, log_std = torch.tensor([0.3, -1.2], dtype=torch.float64), torch.tensor([-0.2, 0.4], dtype=torch.float64)
    normal = Normal(mean, log_std.exp())
    a, h = torch.tensor([0.5, -0.97], dtype=torch.float64), 1e-6
    # density of a = tanh(u) by finite differences of its CDF: P(tanh u <= a) = Phi(atanh a)
    cdf = lambda x: normal.cdf(torch.atanh(x))
    numerical = torch.log((cdf(a + h) - cdf(a - h)) / (2 * h)).sum()
    torch.testing.assert_close(squashed_gaussian_log_prob(mean, log_std, a), numerical, rtol=1e-6, atol=1e-6)


def test_sample_log_prob_agrees_with_log_prob_of_the_sample():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 1)
    action, log_prob = squashed_gaussian_sample(mean, log_std)
    assert action.abs().max() < 1
    torch.testing.assert_close(log_prob, squashed_gaussian_log_prob(mean, log_std, action), rtol=1e-3, atol=1e-3)


def test_actor_critic_starts_near_uniform_with_orthogonal_init():
    import gymnasium as gym
    policy = ActorCritic(4, gym.spaces.Discrete(2))
    log_prob, entropy, value = policy.evaluate(torch.randn(32, 4), torch.zeros(32, dtype=torch.long))
    torch.testing.assert_close(entropy, torch.full((32,), math.log(2)), atol=1e-3, rtol=0)   # policy head gain 0.01
    assert value.shape == (32,)
