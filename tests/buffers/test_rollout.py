"""GAE against hand-computed values, with truncation and termination, and the rollout buffer."""

import pytest
import torch

from buffers.rollout import RolloutBuffer, compute_gae

GAMMA, LAM = 0.9, 0.5


def test_gae_hand_computed_truncation_and_termination():
    # env 0: truncated at step 1 with V(final obs) = 4; env 1: terminated at step 1 (final value ignored)
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [1.0, 1.0], [1.5, 1.0]])
    terminated = torch.tensor([[False, False], [False, True], [False, False]])
    truncated = torch.tensor([[False, False], [True, False], [False, False]])
    final_values = torch.tensor([[0.0, 0.0], [4.0, 100.0], [0.0, 0.0]])
    last_value = torch.tensor([2.0, 1.0])
    advantages, returns = compute_gae(rewards, values, terminated, truncated, final_values, last_value, GAMMA, LAM)
    # env 0: A2 = 3 + .9*2 - 1.5 = 3.3; A1 = 2 + .9*4 - 1 = 4.6 (bootstrap from the final obs, recursion cut);
    #        A0 = (1 + .9*1 - .5) + .9*.5*4.6 = 3.47
    # env 1: A2 = 1 + .9 - 1 = .9; A1 = 1 + 0 - 1 = 0 (terminal); A0 = .9 + .45*0 = .9
    expected = torch.tensor([[3.47, 0.9], [4.6, 0.0], [3.3, 0.9]])
    torch.testing.assert_close(advantages, expected)
    torch.testing.assert_close(returns, expected + values)


def test_gae_lambda_one_is_discounted_return_minus_value():
    torch.manual_seed(0)
    T = 6
    rewards, values = torch.randn(T, 1), torch.randn(T, 1)
    no = torch.zeros(T, 1, dtype=torch.bool)
    last_value = torch.randn(1)
    advantages, _ = compute_gae(rewards, values, no, no, torch.zeros(T, 1), last_value, GAMMA, 1.0)
    ret, expected = last_value.clone(), torch.zeros(T, 1)
    for t in reversed(range(T)):
        ret = rewards[t] + GAMMA * ret
        expected[t] = ret - values[t]
    torch.testing.assert_close(advantages, expected)


def test_rollout_buffer_stores_dict_observations_and_flattens_time_major():
    T, E = 3, 2
    buffer = RolloutBuffer(T, E)
    for t in range(T):
        obs = {"domain": torch.full((E, 4), float(t)), "instruments": torch.full((E, 3, 5), float(t))}
        buffer.add(obs, torch.full((E, 3), float(t)), torch.zeros(E), torch.zeros(E), torch.ones(E),
                   torch.zeros(E, dtype=torch.bool), torch.zeros(E, dtype=torch.bool))
    with pytest.raises(IndexError):
        buffer.add(obs, torch.zeros(E, 3), torch.zeros(E), torch.zeros(E), torch.ones(E),
                   torch.zeros(E, dtype=torch.bool), torch.zeros(E, dtype=torch.bool))
    buffer.compute_advantages(torch.zeros(E), GAMMA, LAM)
    batch = buffer.flatten()
    assert batch.obs["instruments"].shape == (T * E, 3, 5) and len(batch) == T * E
    assert batch.obs["domain"][:, 0].tolist() == [0, 0, 1, 1, 2, 2]            # row t * E + e
    mini = batch.index(torch.tensor([5, 0]))
    assert mini.actions[:, 0].tolist() == [2.0, 0.0] and mini.obs["domain"].shape == (2, 4)


def test_reset_steps_of_next_step_autoreset_leave_the_batch_and_the_other_advantages_alone():
    # env 0 is truncated at step 0 (final value 4) and spends step 1 on its NEXT_STEP reset
    T, E = 3, 2
    rewards = torch.tensor([[1.0, 1.0], [0.0, 1.0], [3.0, 1.0]])
    values = torch.tensor([[0.5, 1.0], [7.0, 1.0], [1.5, 1.0]])
    truncated = torch.tensor([[True, False], [False, False], [False, False]])
    valid = torch.tensor([[True, True], [False, True], [True, True]])
    buffer = RolloutBuffer(T, E)
    for t in range(T):
        buffer.add(torch.full((E, 1), float(t)), torch.zeros(E), torch.zeros(E), values[t], rewards[t],
                   torch.zeros(E, dtype=torch.bool), truncated[t], torch.tensor([4.0, 0.0]), valid=valid[t])
    buffer.compute_advantages(torch.tensor([2.0, 1.0]), GAMMA, LAM)
    batch = buffer.flatten()
    assert len(batch) == 5 and batch.obs[:, 0].tolist() == [0, 0, 1, 2, 2]        # (t=1, e=0) left out
    # env 0 at step 0: 1 + .9 * 4 - .5 = 4.1, whatever the reset step holds (its value 7 is never used)
    assert batch.advantages[0].item() == pytest.approx(4.1)
