"""Vector envs in both autoreset modes: final observations and episode statistics."""

import numpy as np

from learners.envs import autoresets_next_step, final_observations, finished_episodes, make_vector_env


def _run(envs, steps: int) -> tuple[list, list]:
    """Step `envs` with action 0; (finished episodes, final observations of done steps)."""
    envs.reset(seed=0)
    episodes, finals = [], []
    for _ in range(steps):
        next_obs, _, terminated, truncated, info = envs.step(np.zeros(envs.num_envs, dtype=np.int64))
        done = terminated | truncated
        episodes += finished_episodes(info)
        if done.any():
            finals.append((next_obs.copy(), final_observations(next_obs, done, info, autoresets_next_step(envs))))
    return episodes, finals


def test_next_step_autoreset_counts_no_reset_step_and_keeps_the_final_observation():
    envs = make_vector_env("CartPole-v1", 2, seed=0, vectorization="vector_entry_point")
    assert autoresets_next_step(envs)
    episodes, finals = _run(envs, 40)                  # pushing left, CartPole falls within ~10 steps
    # under NEXT_STEP the returned row is the final observation itself
    assert finals and all(np.array_equal(returned, final) for returned, final in finals)
    # each episode pays 1 per step, so its return equals its length: the reset step adds neither
    assert len(episodes) >= 4 and all(r == length for r, length in episodes)


def test_same_step_autoreset_replaces_finished_rows_by_their_final_observation():
    envs = make_vector_env("CartPole-v1", 2, seed=0)
    assert not autoresets_next_step(envs)
    episodes, finals = _run(envs, 40)
    assert len(episodes) >= 4 and all(r == length for r, length in episodes)
    for returned, final in finals:
        # the returned row already starts the next episode (|x| <= 0.05); the final one has fallen
        assert np.abs(returned).max(axis=1).min() <= 0.05 and np.abs(final[:, 2]).max() > 0.2
