"""The circular replay buffer: wrap-around, dict observations, state dict round trip."""

import torch

from buffers.replay import ReplayBuffer


def _add(buffer: ReplayBuffer, start: int, n: int) -> None:
    ids = torch.arange(start, start + n, dtype=torch.float32)
    obs = {"a": ids[:, None].repeat(1, 2), "b": ids[:, None, None].repeat(1, 2, 3)}
    buffer.add(obs, ids[:, None], ids, obs, torch.zeros(n))


def test_wraps_around_overwriting_the_oldest():
    buffer = ReplayBuffer(capacity=5)
    _add(buffer, 0, 3)
    assert len(buffer) == 3 and buffer.position == 3
    _add(buffer, 3, 4)                                    # rows 3, 4, 0, 1 <- ids 3, 4, 5, 6
    assert len(buffer) == 5 and buffer.position == 2
    assert buffer.storage.rewards.tolist() == [5, 6, 2, 3, 4]
    assert buffer.storage.obs["b"][:, 1, 2].tolist() == [5, 6, 2, 3, 4]


def test_samples_consistent_rows_and_round_trips_its_state():
    buffer = ReplayBuffer(capacity=8)
    _add(buffer, 0, 6)
    batch = buffer.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(batch.obs["a"][:, 0], batch.rewards) and torch.equal(batch.actions[:, 0], batch.rewards)
    assert batch.rewards.max() < 6
    restored = ReplayBuffer(capacity=8)
    restored.load_state_dict(buffer.state_dict())
    assert len(restored) == 6 and torch.equal(restored.storage.next_obs["b"], buffer.storage.next_obs["b"])


def test_rows_since_a_count_rebuild_the_buffer_exactly():
    buffer, copy = ReplayBuffer(capacity=5), ReplayBuffer(capacity=5)
    _add(buffer, 0, 3)
    copy.put(*buffer.rows_since(0), buffer.added)
    _add(buffer, 3, 4)                                    # wraps around
    copy.put(*buffer.rows_since(3), buffer.added)
    assert (copy.added, copy.size, copy.position) == (buffer.added, buffer.size, buffer.position) == (7, 5, 2)
    assert torch.equal(copy.storage.obs["b"], buffer.storage.obs["b"])
    _add(buffer, 7, 4)                                    # more than the capacity since the last count
    _add(buffer, 11, 5)
    rows, rows_data = buffer.rows_since(7)
    assert rows.tolist() == [1, 2, 3, 4, 0] and rows_data.rewards.tolist() == [11, 12, 13, 14, 15]
    copy.put(rows, rows_data, buffer.added)
    assert torch.equal(copy.storage.rewards, buffer.storage.rewards) and copy.position == buffer.position
    state = buffer.state_dict()
    assert state["rewards"].shape == (5,)                 # the filled rows only
    half = ReplayBuffer(capacity=8)
    _add(half, 0, 3)
    assert half.state_dict()["rewards"].tolist() == [0, 1, 2]
