"""VecMarketEnv and MarketEnv: the gymnasium contract (spaces, seeding, same-step autoreset,
check_env), episodes, reward penalties, the overlay hook, the margin cap, and the per-level
views the hierarchy reads."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.config import EnvConfig
from envs.synthetic import SyntheticConfig, generate
from envs.vec_env import MarketEnv, VecMarketEnv


@pytest.fixture(scope="module")
def market():
    return generate(SyntheticConfig(years=2, seed=1))


def test_market_env_passes_the_gymnasium_checker(market):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(infinity|symmetric and normalized).*")
        check_env(MarketEnv(market, EnvConfig(episode_length=30)), skip_render_check=True)


def test_spaces_dtypes_and_seeded_starts(market):
    config = EnvConfig(episode_length=50)
    env = VecMarketEnv(market, config, num_envs=32, seed=0)
    observation, _ = env.reset(seed=123)
    assert observation.shape == (32, env.layout.size) and observation.dtype == np.float32
    assert env.single_action_space.shape == (market.n_instruments,)
    assert env.action_space.shape == (32, market.n_instruments) and env.observation_space.contains(observation)
    starts = env.state.bar.copy()
    assert starts.min() >= config.warmup_bars and starts.max() <= market.n_bars - 1 - 50
    assert len(set(starts.tolist())) > 10
    again, _ = env.reset(seed=123)
    np.testing.assert_array_equal(env.state.bar, starts)
    np.testing.assert_array_equal(again, observation)
    env.reset(seed=124)
    assert not np.array_equal(env.state.bar, starts)


def test_same_step_autoreset_reports_the_final_observation(market):
    env = VecMarketEnv(market, EnvConfig(episode_length=5), num_envs=4, seed=0)
    env.reset(seed=0)
    weights = np.full((4, market.n_instruments), 0.2)
    for _ in range(4):
        _, _, terminated, truncated, info = env.step(weights)
        assert not (terminated | truncated).any() and "final_obs" not in info
    ends = env.state.end_bar.copy()
    observation, _, _, truncated, info = env.step(weights)
    assert truncated.all() and info["_final_obs"].all()
    final = info["final_obs"]
    drawdown = env.layout.portfolio_column("drawdown")
    np.testing.assert_allclose(final[:, drawdown], info["drawdown"], rtol=1e-6)
    assert (observation[:, env.layout.portfolio_column("log_equity")] == 0.0).all()   # new episodes
    assert (env.equity == 1e6).all() and not np.array_equal(env.state.end_bar, ends)
    assert (info["equity"] != 1e6).all()                 # the info describes the finished step


def test_evaluation_walks_the_whole_split_once(market):
    config = EnvConfig(episode_length=0, warmup_bars=25)
    env = VecMarketEnv(market, config, num_envs=3, seed=0)
    env.reset(seed=5)
    assert (env.state.bar == 25).all()
    steps, truncated = 0, np.zeros(3, dtype=bool)
    while not truncated.any():
        _, _, _, truncated, _ = env.step(np.zeros((3, market.n_instruments)))
        steps += 1
    assert truncated.all() and steps == market.n_bars - 1 - 25


def test_reward_penalties(market):
    config = EnvConfig(episode_length=0, drawdown_penalty=2.0, turnover_penalty=0.1, tail_penalty=3.0,
                       tail_sigmas=0.5)
    env = VecMarketEnv(market, config, num_envs=16, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    penalised = 0
    for _ in range(40):
        variance, drawdown = env.state.portfolio_var.copy(), env.drawdown.copy()
        _, reward, _, _, info = env.step(rng.uniform(-3, 3, (16, market.n_instruments)))
        log_return = info["log_return"]
        expected = (log_return - 2.0 * np.maximum(info["drawdown"] - drawdown, 0.0) - 0.1 * info["turnover"]
                    - 3.0 * np.maximum(-log_return - 0.5 * np.sqrt(variance), 0.0))
        np.testing.assert_allclose(reward, expected, rtol=1e-12, atol=1e-15)
        equity_before = info["equity"] - info["pnl"] + info["costs"].sum(1)
        np.testing.assert_allclose(log_return, np.log(info["equity"] / equity_before), rtol=1e-9)
        penalised += (reward < log_return).sum()
    assert penalised > 0


def test_overlay_maps_targets_and_step_weights_bypasses_it(market):
    seen = []

    def halve(targets):
        seen.append(targets.dtype)
        return 0.5 * targets

    env = VecMarketEnv(market, EnvConfig(), num_envs=2, overlay=halve, seed=0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full((2, market.n_instruments), 0.2, dtype=np.float32))
    assert seen == [np.float64]
    np.testing.assert_allclose(info["executed_weights"], 0.1, rtol=1e-6)
    _, _, _, _, info = env.step_weights(np.full((2, market.n_instruments), 0.2))
    np.testing.assert_allclose(info["executed_weights"], 0.2, rtol=1e-12)
    assert len(seen) == 1


def test_margin_and_leverage_cap_targets_without_an_overlay(market):
    env = VecMarketEnv(market, EnvConfig(max_leverage=50.0), num_envs=1, seed=0)
    env.reset(seed=0)
    targets = np.zeros((1, market.n_instruments))
    targets[0, 3:5] = [30.0, -30.0]                       # commodities: 10 % initial margin
    _, _, _, _, info = env.step(targets)
    executed = info["executed_weights"][0]
    assert np.abs(executed) @ market.costs.initial_margin == pytest.approx(1.0)
    assert executed[3] == pytest.approx(5.0) and executed[4] == pytest.approx(-5.0)
    env = VecMarketEnv(market, EnvConfig(max_leverage=2.0), num_envs=1, seed=0)
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.full((1, market.n_instruments), 1.0))
    assert np.abs(info["executed_weights"][0]).sum() == pytest.approx(2.0)


def test_level_views_are_slices_of_one_observation(market):
    env = VecMarketEnv(market, EnvConfig(), num_envs=8, seed=0, copy=False)
    env.reset(seed=0)
    observation, _, _, _, _ = env.step(np.random.default_rng(0).uniform(-1, 1, (8, market.n_instruments)))
    assert observation is env.observation                  # copy=False hands out the buffer
    instruments = env.instrument_observation()
    assert np.shares_memory(instruments, env.observation) and np.shares_memory(env.meta_observation(), env.observation)
    np.testing.assert_allclose(instruments[:, :, env.layout.instrument_column("weight")], env.weights, rtol=1e-6)
    commodities, state = env.specialist_observation(1)    # XAUUSD, WTIUSD
    assert commodities.shape == (8, 2, env.layout.per_instrument) and state.shape == (8, 4)
    assert np.shares_memory(commodities, env.observation) and np.shares_memory(state, env.observation)
    np.testing.assert_allclose(state[:, 0], np.abs(env.weights[:, 3:5]).sum(1), rtol=1e-5)
    np.testing.assert_allclose(state[:, 2], env.outputs.domain_reward[:, 1], rtol=1e-5)
    drawdown = env.observation[:, env.layout.portfolio_column("drawdown")]
    np.testing.assert_allclose(drawdown, env.drawdown, rtol=1e-6, atol=1e-9)

    env.set_guidance(np.tile([0.5, 0.3, 0.2], (8, 1)), np.linspace(0.0, 1.0, 8))
    allocation = instruments[:, :, env.layout.instrument_column("allocation")]
    np.testing.assert_allclose(allocation[0], [0.5, 0.5, 0.5, 0.3, 0.3, 0.2, 0.2, 0.2])
    np.testing.assert_allclose(instruments[:, 0, env.layout.instrument_column("risk_appetite")],
                               np.linspace(0.0, 1.0, 8), rtol=1e-6)


def test_interleaved_domains_get_copied_but_correct_specialist_views():
    market = generate(SyntheticConfig(universe="factor", n_instruments=12, years=1, seed=0))
    env = VecMarketEnv(market, EnvConfig(episode_length=50, meta_correlation="domains"), num_envs=2, seed=0)
    env.reset(seed=0)
    instruments, state = env.specialist_observation(2)
    members = np.flatnonzero(market.domain_index == 2)
    np.testing.assert_array_equal(instruments, env.instrument_observation()[:, members])
    assert not np.shares_memory(instruments, env.observation) and np.shares_memory(state, env.observation)
    assert env.layout.n_global == 4 * 3 // 2 + 4           # domain correlations and daily macro


def test_given_feature_arrays_are_observed(market):
    T, N = market.n_bars, market.n_instruments
    features = np.arange(T * N * 2, dtype=np.float32).reshape(T, N, 2)
    regimes = np.tile(np.array([0.2, 0.8], dtype=np.float32), (T, 1))
    env = VecMarketEnv(market, EnvConfig(episode_length=0), num_envs=1, instrument_features=features,
                       global_features=np.zeros((T, 3), np.float32), regime_probs=regimes)
    observation, _ = env.reset(seed=0)
    assert env.layout.n_features == 2
    np.testing.assert_array_equal(env.instrument_observation()[0, :, :2], features[env.state.bar[0]])
    np.testing.assert_array_equal(observation[0, -2:], regimes[0])
    with pytest.raises(ValueError, match=r"instrument_features has shape \(5, 8, 2\)"):
        VecMarketEnv(market, EnvConfig(), num_envs=1, instrument_features=features[:5])
    bad = regimes.copy()
    bad[7, 0] = np.nan
    with pytest.raises(ValueError, match="regime_probs is not finite at row 7"):
        VecMarketEnv(market, EnvConfig(), num_envs=1, regime_probs=bad)


def test_bad_inputs_name_the_culprit(market):
    env = VecMarketEnv(market, EnvConfig(), num_envs=2, seed=0)
    env.reset(seed=0)
    weights = np.zeros((2, market.n_instruments))
    weights[1, 2] = np.inf
    with pytest.raises(ValueError, match="weights of env 1 are infinite"):
        env.step(weights)
    with pytest.raises(ValueError, match=r"expected \(2, 8\)"):
        env.step(np.zeros((3, market.n_instruments)))
    with pytest.raises(ValueError, match="env.execution='open'"):
        VecMarketEnv(market, EnvConfig(execution="open"), num_envs=1)
    with pytest.raises(ValueError, match="too few for env.warmup_bars=20 plus env.episode_length=5000"):
        VecMarketEnv(market, EnvConfig(episode_length=5000), num_envs=1)
    with pytest.raises(ValueError, match="env.vol_halflife=0"):
        VecMarketEnv(market, EnvConfig(vol_halflife=0), num_envs=1)


@pytest.mark.parametrize("correlation", ["instruments", "domains"])
def test_covariance_of_one_bar_from_the_ewma_tables(market, correlation):
    env = VecMarketEnv(market, EnvConfig(episode_length=50, meta_correlation=correlation), num_envs=4, seed=0)
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(rng.uniform(-0.3, 0.3, (4, market.n_instruments)))
    covariance = env.covariance()
    assert covariance.shape == (4, 8, 8)
    assert np.allclose(covariance, covariance.transpose(0, 2, 1))
    assert (np.linalg.eigvalsh(covariance) > -1e-12).all()
    vol = env.tables.bar_vol[env.state.bar]
    np.testing.assert_allclose(np.diagonal(covariance, axis1=1, axis2=2), vol**2)
    off_diagonal = covariance[:, ~np.eye(8, dtype=bool)]
    assert (off_diagonal != 0).any() if correlation == "instruments" else (off_diagonal == 0).all()
