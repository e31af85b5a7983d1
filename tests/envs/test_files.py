"""User files: every bad-input case raises a DataValidationError naming file, line and column;
good files load, align with flagged forward fills, and are never modified on disk."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from envs.loading import FilesConfig, MarketConfig, load_files, load_market
from envs.market_data import FORWARD_FILLED, OBSERVED, DataValidationError

HEADER = "timestamp,symbol,open,high,low,close,volume\n"
GOOD = {
    "AAA": [("2020-01-02", 10, 11, 9, 10.5, 100), ("2020-01-03", 10.5, 11, 10, 10.8, 120),
            ("2020-01-06", 10.8, 11.2, 10.1, 11.0, 90), ("2020-01-07", 11.0, 11.5, 10.9, 11.4, 80)],
    "BBB": [("2020-01-02", 50, 51, 49, 50.5, 10), ("2020-01-03", 50.5, 52, 50, 51.0, 12),
            ("2020-01-06", 51, 51.5, 50.2, 50.8, 9), ("2020-01-07", 50.8, 51, 50, 50.1, 11)],
}


def write_long(path: Path, rows: dict[str, list[tuple]]) -> Path:
    lines = [HEADER] + [f"{r[0]},{sym},{r[1]},{r[2]},{r[3]},{r[4]},{r[5]}\n"
                        for sym, bars in rows.items() for r in bars]
    path.write_text("".join(lines))
    return path


def files_config(path: Path, **kwargs) -> FilesConfig:
    return FilesConfig(path=str(path), domains={"one": ["AAA"], "two": ["BBB"]}, **kwargs)


def test_long_table_loads_and_aligns(tmp_path):
    market = load_files(files_config(write_long(tmp_path / "bars.csv", GOOD)))
    assert market.symbols == ("AAA", "BBB") and market.domain_names == ("one", "two")
    assert market.ohlcv.shape == (4, 2, 5)
    assert market.close[2, 0] == 11.0 and market.field("volume")[1, 1] == 12
    assert str(market.timestamps.tz) == "UTC"
    assert (market.quality == OBSERVED).all()


def test_per_instrument_folder_and_parquet(tmp_path):
    for sym, bars in GOOD.items():
        frame = pd.DataFrame(bars, columns=["timestamp", "open", "high", "low", "close", "volume"])
        frame.to_parquet(tmp_path / f"{sym}.parquet")
    market = load_files(files_config(tmp_path, layout="per_instrument"))
    assert market.close[-1].tolist() == [11.4, 50.1]


def test_calendar_union_forward_fills_and_flags(tmp_path):
    rows = {"AAA": GOOD["AAA"], "BBB": [GOOD["BBB"][0], GOOD["BBB"][1], GOOD["BBB"][3]]}
    market = load_files(files_config(write_long(tmp_path / "bars.csv", rows)))
    assert market.quality[2].tolist() == [OBSERVED, FORWARD_FILLED]
    # the filled bar repeats the last close with no range and no volume
    assert market.ohlcv[2, 1].tolist() == [51.0, 51.0, 51.0, 51.0, 0.0]


def test_gap_beyond_forward_fill_limit_is_an_error(tmp_path):
    rows = {"AAA": GOOD["AAA"], "BBB": [GOOD["BBB"][0], GOOD["BBB"][3]]}
    path = write_long(tmp_path / "bars.csv", rows)
    with pytest.raises(DataValidationError, match=r"BBB has no bar for 2 consecutive .*limit 1"):
        load_files(files_config(path), ffill_limit=1)


def test_wide_closes_are_closes_only(tmp_path):
    path = tmp_path / "closes.csv"
    path.write_text("Date,AAA,BBB\n2020-01-02,1,2\n2020-01-03,1.1,2.1\n")
    market = load_files(files_config(path, layout="wide", columns={"Date": "timestamp"}))
    assert not market.has_ohlc.any() and not market.has_volume.any()
    assert np.isnan(market.field("open")).all() and market.close[1].tolist() == [1.1, 2.1]


BAD_CASES = [
    # (text in the file, its replacement, expected message)
    ("close", "clsoe", r"missing column 'close' \(did you mean 'clsoe'\?\)"),
    ("2020-01-03,AAA", "2020-13-45,AAA", r"line 3: column 'timestamp': cannot parse '2020-13-45'"),
    ("2020-01-03,AAA", "2020-01-02,AAA", r"line 3: column 'timestamp': duplicate .* \(first at line 2\)"),
    ("2020-01-06,AAA", "2020-01-01,AAA", r"line 4: column 'timestamp': .* is not after"),
    ("10.5,11,10,10.8", "10.5,11,10,nan", r"line 3: column 'close': 'nan' is missing or not a number"),
    ("10.8,11.2,10.1,11.0", "10.8,11.2,10.1,-11.0", r"line 4: column 'close' is not positive"),
    ("10.8,11.2,10.1,11.0", "10.8,10.0,10.1,10.05", r"line 4: column 'high' is below low"),
    ("10.8,11.2,10.1,11.0", "10.8,11.2,10.1,12.0", r"line 4: column 'close' is outside \[low, high\]"),
    ("11.4,80", "11.4,-80", r"line 5: column 'volume' is negative"),
]


@pytest.mark.parametrize("old, new, message", BAD_CASES)
def test_bad_input_names_file_line_and_column(tmp_path, old, new, message):
    path = write_long(tmp_path / "bars.csv", GOOD)
    path.write_text(path.read_text().replace(old, new))
    with pytest.raises(DataValidationError, match=message) as error:
        load_files(files_config(path))
    assert "bars.csv" in str(error.value)


def test_no_overlap_and_empty_domain_and_unmapped_symbols(tmp_path):
    late = [("2021-01-04", 1, 1, 1, 1, 1), ("2021-01-05", 1, 1, 1, 1, 1)]
    path = write_long(tmp_path / "bars.csv", {"AAA": GOOD["AAA"], "BBB": late})
    with pytest.raises(DataValidationError, match="no overlap"):
        load_files(files_config(path))
    path = write_long(tmp_path / "bars.csv", GOOD)
    with pytest.raises(DataValidationError, match="a domain with no instrument"):
        load_files(FilesConfig(path=str(path), domains={"one": ["AAA", "BBB"], "empty": []}))
    with pytest.raises(DataValidationError, match=r"\['BBB'\] not in the domain map"):
        load_files(FilesConfig(path=str(path), domains={"one": ["AAA"]}))
    with pytest.raises(DataValidationError, match="no rows for CCC"):
        load_files(FilesConfig(path=str(path), domains={"one": ["AAA", "BBB", "CCC"]}))


def test_missing_file_and_unknown_layout(tmp_path):
    with pytest.raises(DataValidationError, match="no such file"):
        load_files(files_config(tmp_path / "nope.csv"))
    with pytest.raises(DataValidationError, match="layout 'diagonal'"):
        load_files(files_config(write_long(tmp_path / "b.csv", GOOD), layout="diagonal"))


def test_files_are_not_modified_and_the_lake_caches(tmp_path):
    path = write_long(tmp_path / "bars.csv", GOOD)
    before = hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns
    config = MarketConfig(source="csv", files=files_config(path), lake_dir=str(tmp_path / "lake"))
    first = load_market(config)
    entries = list((tmp_path / "lake" / "clean").iterdir())
    second = load_market(config)
    assert len(entries) == 1 and list((tmp_path / "lake" / "clean").iterdir()) == entries
    assert np.array_equal(first.ohlcv, second.ohlcv)
    assert (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns) == before
    # a changed file is a new key, hence a rebuild
    write_long(path, {"AAA": GOOD["AAA"][:3], "BBB": GOOD["BBB"][:3]})
    assert load_market(config).n_bars == 3
    assert len(list((tmp_path / "lake" / "clean").iterdir())) == 2
