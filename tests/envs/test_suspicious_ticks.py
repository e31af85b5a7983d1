"""Suspicious ticks: a one-bar spike that reverts is flagged at load time (warned about by default,
refused with market.files.suspicious_ticks=reject); a large move that stays is not."""

import warnings

import numpy as np
import pytest

from envs.loading import FilesConfig, load_files
from envs.market_data import DataValidationError
from envs.validation import SuspiciousTickWarning, suspicious_ticks


def write_closes(path, aaa: np.ndarray):
    """AAA with the given closes and a quiet BBB, one business day apart; line k + 2 holds bar k."""
    days = np.datetime_as_string(np.busday_offset("2020-01-01", np.arange(len(aaa)), roll="forward"))
    bbb = 50 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, len(aaa))))
    rows = [f"{d},AAA,{float(a)!r}" for d, a in zip(days, aaa)] + [f"{d},BBB,{float(b)!r}" for d, b in zip(days, bbb)]
    path.write_text("timestamp,symbol,close\n" + "\n".join(rows) + "\n")
    return FilesConfig(path=str(path), domains={"one": ["AAA"], "two": ["BBB"]})


def walk(n: int = 300, seed: int = 0) -> np.ndarray:
    return 10 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.01, n)))


def test_a_spike_that_reverts_warns_naming_file_line_and_instrument(tmp_path):
    close = walk()
    close[100] *= 100                                            # a price typed x100 for one bar
    config = write_closes(tmp_path / "bars.csv", close)
    with pytest.warns(SuspiciousTickWarning) as record:
        market = load_files(config)
    message = str(record[0].message)
    assert f"{tmp_path / 'bars.csv'}, line 102: column 'close': AAA jumps" in message
    assert market.close[100, 0] == close[100]                    # warned, not altered


def test_reject_refuses_the_spike_and_ignore_loads_silently(tmp_path):
    close = walk()
    close[200] /= 100                                            # a dip to 1 % that comes back
    config = write_closes(tmp_path / "bars.csv", close)
    config.suspicious_ticks = "reject"
    with pytest.raises(DataValidationError, match=r"bars.csv, line 202: column 'close': AAA jumps"):
        load_files(config)
    config.suspicious_ticks = "ignore"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_files(config)


def test_a_crash_that_stays_down_is_not_flagged(tmp_path):
    close = walk()
    close[150:] *= 0.3                                           # -70 % in one bar, and it stays there
    close[250:] *= 3.5                                           # a later jump up that stays too
    config = write_closes(tmp_path / "bars.csv", close)
    config.suspicious_ticks = "reject"
    assert load_files(config).n_bars == len(close)


def test_quiet_and_flat_series_do_not_flag_ordinary_ticks():
    flat = np.full(500, 10.0)
    flat[::7] = 10.01                                            # a bid-ask bounce in a flat series: MAD 0
    assert suspicious_ticks(flat, 10.0).size == 0
    for seed in range(5):                                        # fat-tailed daily returns, 10 years
        returns = 0.01 * np.random.default_rng(seed).standard_t(4, 2520)
        assert suspicious_ticks(100 * np.exp(np.cumsum(returns)), 10.0).size == 0


def test_swings_in_a_volatile_spell_are_judged_by_its_own_volatility():
    returns = np.random.default_rng(3).normal(0, 0.01, 1500)
    returns[700:760] *= 8                                        # a crisis: 8 % daily moves for 60 bars
    returns[730:732] = [-0.25, 0.2]                              # -22 % and back up +22 % in it
    close = 100 * np.exp(np.cumsum(returns))
    assert suspicious_ticks(close, 10.0).size == 0
    close[300] *= 100
    assert suspicious_ticks(close, 10.0).tolist() == [300]


def test_spikes_are_found_vectorised_and_the_edges_are_left_alone():
    close = walk(1000)
    close[[10, 500, 501 + 300]] *= [50, 0.02, 3]
    close[0] *= 100                                              # the first bar has no return into it
    close[-1] *= 100                                             # the last has none out of it
    assert suspicious_ticks(close, 10.0).tolist() == [10, 500, 801]


def test_an_unknown_mode_or_a_bad_threshold_names_the_key(tmp_path):
    config = write_closes(tmp_path / "bars.csv", walk())
    config.suspicious_ticks = "shout"
    with pytest.raises(DataValidationError, match="market.files.suspicious_ticks 'shout'"):
        load_files(config)
    config.suspicious_ticks, config.suspicious_tick_mads = "warn", 0.0
    with pytest.raises(DataValidationError, match="market.files.suspicious_tick_mads=0.0 must be > 0"):
        load_files(config)
