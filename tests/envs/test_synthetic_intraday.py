"""Intraday synthetic markets: the calendar (weekday bars, sessions, flat bars outside them),
realised volatility per year, the intraday volatility pattern, regimes lasting days, the ground
truth, and costs, financing and annualisation that follow the bar length."""

import numpy as np
import pandas as pd
import pytest

from envs.config import EnvConfig
from envs.market_data import FORWARD_FILLED
from envs.state import FINANCING, SLIPPAGE, kernel_params
from envs.summary import instrument_summary
from envs.synthetic import SYNTHETIC8, SyntheticConfig, bar_garch, day_profile, generate
from envs.vec_env import VecMarketEnv
from features.indicators import close_to_close_vol

SPX = 5                     # index of SPX500 in synthetic8
EQUITY = [5, 6, 7]


@pytest.fixture(scope="module")
def five_minute():
    return generate(SyntheticConfig(years=0.1, seed=3, bar_minutes=5))


@pytest.fixture(scope="module")
def hourly_long():
    """30 years of hourly bars without jumps or momentum, for realised moments."""
    return generate(SyntheticConfig(years=30, seed=11, bar_minutes=60, jumps_per_year=0.0, momentum=0.0))


def test_calendar_is_weekday_bars_with_sessions(five_minute):
    market = five_minute
    assert market.name == "synthetic8_5m" and market.bars_per_year == 252 * 288
    assert market.n_bars == 25 * 288 and market.attrs["bar_minutes"] == 5
    steps = np.diff(market.timestamps.asi8) // 60_000_000_000
    assert set(steps.tolist()) == {5, 5 + 2 * 1440}                 # 5 minutes, or over a weekend
    assert market.timestamps[0] == pd.Timestamp("2010-01-04 00:05", tz="UTC")
    assert market.timestamps[287] == pd.Timestamp("2010-01-05 00:00", tz="UTC")
    flat = market.quality == FORWARD_FILLED
    assert not flat[:, :3].any()                                     # FX: around the clock
    hours = market.timestamps.hour + market.timestamps.minute / 60
    in_session = (hours > 14.5) & (hours <= 21.0)
    np.testing.assert_array_equal(~flat[:, SPX], in_session)
    o, h, l, c, v = np.moveaxis(market.ohlcv[1:][flat[1:, SPX], SPX], -1, 0)
    prev = market.close[:-1][flat[1:, SPX], SPX]
    assert (o == prev).all() and (h == prev).all() and (l == prev).all() and (c == prev).all() and (v == 0).all()
    active = market.ohlcv[~flat]
    assert (active[:, 1] >= np.maximum(active[:, 0], active[:, 3])).all() and (active[:, 4] > 0).all()


def test_day_profiles_share_the_day_and_gap_at_the_open():
    config = SyntheticConfig(bar_minutes=30)
    for spec in SYNTHETIC8:
        share, gap = day_profile(spec, config, 48)
        assert share.sum() == pytest.approx(1.0) and (share >= 0).all()
        if spec.asset_class == "fx":
            assert (gap == 0).all() and share.argmax() in (28, 29)   # 14:00-15:00 UTC
        else:
            first = np.flatnonzero(share)[0]
            assert gap[first] * share[first] == pytest.approx(spec.overnight_share)
            assert (gap[first + 1:] == 0).all()


def test_realised_volatility_per_year_matches_configuration(hourly_long):
    market = hourly_long
    realised = market.log_returns[1:].std(axis=0) * np.sqrt(market.bars_per_year)
    # the regime path is common to all instruments: 30 years of it leave a few % of noise
    np.testing.assert_allclose(realised, [s.annual_vol for s in SYNTHETIC8], rtol=0.1)
    vol = instrument_summary(market)["ann_vol"].to_numpy()                  # ddof = 1
    np.testing.assert_allclose(vol, realised, rtol=1e-5)


def test_intraday_volatility_is_u_shaped_in_the_session(hourly_long):
    market = hourly_long
    returns = market.log_returns[24:].reshape(-1, 24, market.n_instruments)   # (days, 24, N)
    by_bar = (returns[:, :, SPX] ** 2).mean(axis=0)                  # bar k closes at k + 1 o'clock
    session = by_bar[14:21]                                           # bars closing 15:00 .. 21:00
    assert session[0] > 2 * session[3]                               # the open carries the night
    assert session[-1] > 2 * session[3]                              # the U-shape's close
    assert (by_bar[:14] == 0).all() and (by_bar[21:] == 0).all()
    fx = (returns[:, :, 0] ** 2).mean(axis=0)
    assert fx[14] > 2 * fx[2]                                        # London-New York vs Asia


def test_regimes_last_days_not_bars(hourly_long):
    regime = hourly_long.ground_truth.regime
    spells = np.split(regime, np.flatnonzero(np.diff(regime)) + 1)
    for k, days in enumerate(SyntheticConfig().regime_durations):
        lengths = [len(s) for s in spells if s[0] == k]
        assert abs(np.mean(lengths) / 24 - days) < 3 * days / np.sqrt(len(lengths)) + 2


def test_ground_truth_predicts_and_alpha_zero_removes_it(five_minute):
    truth = five_minute.ground_truth
    predicted = truth.expected_returns[:-1, :3].ravel()             # FX: every bar moves
    assert np.corrcoef(predicted, five_minute.log_returns[1:, :3].ravel())[0, 1] > 0.05
    flat_next = five_minute.quality[1:] == FORWARD_FILLED
    assert (truth.expected_returns[:-1][flat_next] == 0).all() and (truth.conditional_vol[:-1][flat_next] == 0).all()
    flat = generate(SyntheticConfig(years=0.05, seed=3, bar_minutes=5, alpha=0.0, jumps_per_year=0.0)).ground_truth
    assert np.abs(flat.expected_returns + 0.5 * flat.conditional_vol**2).max() < 1e-15


def test_garch_keeps_its_persistence_per_day():
    a, b = bar_garch(0.06, 0.92, 288)
    assert (a + b) ** 288 == pytest.approx(0.98) and a / (1 - a - b) == pytest.approx(0.06 / 0.02)
    assert bar_garch(0.06, 0.92, 1) == (0.06, 0.92)


@pytest.mark.parametrize(("override", "message"), [
    ({"bar_minutes": 7}, r"market.synthetic.bar_minutes=7 must divide a day"),
    ({"bar_minutes": 60, "sessions": {"equity_index": [21.0, 14.5]}}, r"sessions.equity_index=\[21.0, 14.5\]"),
    ({"bar_minutes": 720, "sessions": {"equity_index": [14.5, 21.0]}}, r"holds no bar of 720 minutes"),
    ({"bar_minutes": 60, "seasonality": 1.0}, r"seasonality=1.0 must be in \[0, 1\)"),
])
def test_bad_settings_name_their_key(override, message):
    with pytest.raises(ValueError, match=message):
        generate(SyntheticConfig(years=0.1, **override))


def test_costs_financing_and_annualisation_follow_the_bar_length(five_minute):
    market = five_minute
    m = 288
    params = kernel_params(EnvConfig(), market)
    assert params.daily_vol_factor == pytest.approx(np.sqrt(m)) and params.bars_per_year == 252 * m
    config = EnvConfig(episode_length=0, warmup_bars=300, execution="close", max_leverage=5.0)
    env = VecMarketEnv(market, config, num_envs=1)
    env.reset(seed=0)
    weights = np.zeros((1, market.n_instruments))
    weights[0, 0] = 3.0                                              # EURUSD, levered 3x
    _, _, _, _, first = env.step(weights)
    bar = config.warmup_bars
    slippage = 3e6 * market.costs.slippage_vol_coef[0] * env.tables.bar_vol[bar, 0] * np.sqrt(m)
    assert first["costs"][0, SLIPPAGE] == pytest.approx(slippage, rel=1e-9)
    financing = [first["costs"][0, FINANCING]]
    for _ in range(m - 1):                                           # hold for the rest of the day
        _, _, _, _, info = env.step(np.full((1, market.n_instruments), np.nan))
        financing.append(info["costs"][0, FINANCING])
    rate = np.mean(env.tables.short_rate[bar:bar + m]) + market.costs.financing_spread_bps[0] * 1e-4
    notional = np.abs(env.positions[0, 0])
    levered = 1.0 - env.equity[0] / notional
    assert np.sum(financing) == pytest.approx(notional * levered * rate / 252, rel=0.01)   # one day's
    vol = close_to_close_vol(market.close, 2000, market.bars_per_year)[-1, :3]
    np.testing.assert_allclose(vol, [s.annual_vol for s in SYNTHETIC8[:3]], rtol=0.35)


def test_macro_keeps_its_daily_scale(hourly_long):
    """The VIX-like index annualises a daily variance (no 252 per bar) and the rates move per day."""
    daily = generate(SyntheticConfig(years=30, seed=11, jumps_per_year=0.0, momentum=0.0))
    for name, tolerance in (("vix", 0.15), ("short_rate", 0.5)):
        m = daily.macro_names.index(name)
        assert np.median(hourly_long.macro[:, m]) == pytest.approx(np.median(daily.macro[:, m]), rel=tolerance)
    day_changes = np.diff(hourly_long.macro[23::24, 1])                     # the rate, day to day
    assert np.std(day_changes) == pytest.approx(np.std(np.diff(daily.macro[:, 1])), rel=0.25)
