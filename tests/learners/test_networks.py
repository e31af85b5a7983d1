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


def test_actor_critic_log_prob_and_entropy_match_torch_distributions():
    import gymnasium as gym
    from torch.distributions import Categorical, Independent
    torch.manual_seed(0)
    obs = torch.randn(16, 4)
    discrete = ActorCritic(4, gym.spaces.Discrete(3))
    actions = torch.randint(0, 3, (16,))
    log_prob, entropy, _ = discrete.evaluate(obs, actions)
    reference = Categorical(logits=discrete.actor(obs))
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    continuous = ActorCritic(4, gym.spaces.Box(-1.0, 1.0, (2,)), init_log_std=-0.5)
    actions = torch.randn(16, 2)
    log_prob, entropy, _ = continuous.evaluate(obs, actions)
    reference = Independent(Normal(continuous.actor(obs), continuous.log_std.exp()), 1)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())


def test_gumbel_max_samples_follow_the_categorical():
    import gymnasium as gym
    torch.manual_seed(0)
    policy = ActorCritic(4, gym.spaces.Discrete(3))
    probs = torch.tensor([0.2, 0.3, 0.5])
    with torch.no_grad():   # the same pi(.|s) = probs in every state
        policy.actor[-1].weight.zero_()
        policy.actor[-1].bias.copy_(probs.log())
    actions, log_prob, _ = policy.act(torch.randn(20_000, 4))
    torch.testing.assert_close(torch.bincount(actions, minlength=3) / 20_000, probs, atol=0.015, rtol=0)
    torch.testing.assert_close(log_prob, probs.log()[actions])
    assert (policy.act(torch.randn(5, 4), deterministic=True)[0] == 2).all()
