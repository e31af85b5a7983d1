"""A corpus of malformed user files: each must raise DataValidationError naming the file, the line
(as the user sees it, header = line 1) and the column or field at fault, and leave the file as it was.

Cases marked `defect` failed before the loader was hardened: a bare TypeError or pandas ValueError,
an error naming no file or line, a byte offset instead of a line, or no error at all.
"""

import codecs
import gzip
import io
import re
from dataclasses import dataclass, field

import pandas as pd
import pytest

from envs.loading import FilesConfig, load_files
from envs.market_data import DataValidationError

HEADER = "timestamp,symbol,open,high,low,close,volume"
ROWS = [  # lines 2-9 of the good long file
    "2020-01-02,AAA,10,11,9,10.5,100", "2020-01-03,AAA,10.5,11,10,10.8,120",
    "2020-01-06,AAA,10.8,11.2,10.1,11.0,90", "2020-01-07,AAA,11.0,11.5,10.9,11.4,80",
    "2020-01-02,BBB,50,51,49,50.5,10", "2020-01-03,BBB,50.5,52,50,51.0,12",
    "2020-01-06,BBB,51,51.5,50.2,50.8,9", "2020-01-07,BBB,50.8,51,50,50.1,11",
]
CLOSES = ["2020-01-02,AAA,10.5", "2020-01-03,AAA,10.8", "2020-01-06,AAA,11.0",
          "2020-01-02,BBB,50.5", "2020-01-03,BBB,51.0", "2020-01-06,BBB,50.8"]


def long(*edits: tuple[int, str], header: str = HEADER, rows: list[str] = ROWS, extra: str = "") -> bytes:
    """The good long file with line `n` replaced by `text` for each (n, text) edit, then `extra`."""
    lines = [header, *rows]
    for number, text in edits:
        lines[number - 1] = text
    return ("\n".join(lines) + "\n" + extra).encode()


def closes(*edits: tuple[int, str]) -> bytes:
    return long(*edits, header="timestamp,symbol,close", rows=CLOSES)


def without_open(row: str) -> str:
    fields = row.split(",")
    return ",".join(fields[:2] + fields[3:])


def parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


PARQUET_ROWS = pd.DataFrame({"timestamp": ["2020-01-02", "2020-01-03", "2020-01-06"],
                             "close": [10.5, 10.8, 11.0]})


@dataclass
class Case:
    content: bytes
    line: int
    column: str                       # the column (quoted in the message) or 'field N'
    reason: str                       # a regex the message must also match
    defect: bool = False              # one of the defects named in the issue
    name: str = "bars.csv"
    config: dict = field(default_factory=dict)


CASES = {
    # the defects named in the issue
    "columns differing only by case": Case(
        long(header="timestamp,symbol,open,high,low,Close,close",
             rows=[r.rsplit(",", 1)[0] + "," + r.split(",")[5] for r in ROWS]),
        1, "close", r"'Close' and 'close' both read as", defect=True),
    "mixed UTC offsets": Case(
        closes((2, "2020-01-02T00:00:00+00:00,AAA,10.5"), (3, "2020-01-03T00:00:00+01:00,AAA,10.8")),
        3, "timestamp", "another UTC offset", defect=True),
    "year typed 2921": Case(closes((7, "2921-01-06,BBB,50.8")), 7, "timestamp", "outside 1677-09-22", defect=True),
    "ambiguous local time (clocks go back)": Case(
        b"timestamp,symbol,close\n2020-10-25 01:30,AAA,1\n2020-10-25 02:30,AAA,1.1\n2020-10-25 03:30,AAA,1.2\n",
        3, "timestamp", "ambiguous .* Europe/Berlin", defect=True,
        config={"timezone": "Europe/Berlin", "domains": {"one": ["AAA"]}}),
    "nonexistent local time (clocks skip)": Case(
        b"timestamp,symbol,close\n2020-03-29 01:30,AAA,1\n2020-03-29 02:30,AAA,1.1\n2020-03-29 03:30,AAA,1.2\n",
        3, "timestamp", "does not exist .* Europe/Berlin", defect=True,
        config={"timezone": "Europe/Berlin", "domains": {"one": ["AAA"]}}),
    "close of 1e308": Case(closes((3, "2020-01-03,AAA,1e308")), 3, "close", r"outside \[1e-10, 1e\+12\]", defect=True),
    "high of 1e308": Case(long((4, "2020-01-06,AAA,10.8,1e308,10.1,11.0,90")), 4, "high", "outside", defect=True),
    "instrument with a single row": Case(long(rows=ROWS[:5]), 6, "timestamp", "BBB has this one bar only",
                                         defect=True),
    "Latin-1 byte": Case(long((7, "2020-01-03,BBB,50.5,52,50,51.0,12")).replace(b"BBB,50.5,52", b"BB\xe9,50.5,52"),
                         7, "symbol", "byte 0xe9 is not UTF-8", defect=True),
    # structure of the file
    "empty file": Case(b"", 1, "timestamp", "empty file"),
    "header only": Case(f"{HEADER}\n".encode(), 2, "timestamp", "no rows after the header"),
    "no header line": Case(long(header=ROWS[0], rows=ROWS[1:]), 1, "timestamp", "missing column"),
    "missing close column": Case(long(header=HEADER.replace("close", "clsoe")), 1, "close", "did you mean 'clsoe'"),
    "open missing while high and low exist": Case(
        long(header="timestamp,symbol,high,low,close,volume", rows=[without_open(r) for r in ROWS]),
        1, "open", "missing column 'open'"),
    "two columns mapped onto one": Case(long(header=HEADER.replace("volume", "Adj Close")), 1, "close",
                                        "'close' and 'Adj Close' both read as",
                                        config={"columns": {"Adj Close": "close"}}),
    "semicolon delimiter": Case(long().replace(b",", b";"), 1, "timestamp", "delimited by ';'"),
    "tab delimiter": Case(long().replace(b",", b"\t"), 1, "timestamp", r"delimited by '\\t'"),
    "UTF-16 file": Case(codecs.BOM_UTF16_LE + long().decode().encode("utf-16-le"), 1, "field 1", "not UTF-8"),
    "gzipped file with a Windows-1252 byte": Case(long().replace(b"11.4,80", b"11.4,80\x80"), 5, "volume",
                                                  "byte 0x80 is not UTF-8", name="bars.csv.gz"),
    "extra fields on a line": Case(long((6, "2020-01-02,BBB,50,51,49,50.5,10,7,x")), 6, "volume", "9 fields where"),
    "thousands separator": Case(long((3, "2020-01-03,AAA,10.5,11,10,1,010.8,120")), 3, "volume", "8 fields where"),
    "unclosed quote": Case(long((4, '2020-01-06,"AAA,10.8,11.2,10.1,11.0,90')), 4, "symbol", "unclosed quote"),
    "quoted field over two lines": Case(long((4, '2020-01-06,"AA\nA",10.8,11.2,10.1,11.0,90')), 4, "symbol",
                                        "runs over lines 4-5"),
    "short line (fields missing)": Case(long((5, "2020-01-07,AAA,11.0,11.5")), 5, "low", "'' is missing"),
    "trailing garbage line": Case(long(extra="END OF DATA\n"), 10, "symbol", r"\[''\] not in the domain map"),
    "header repeated mid-file": Case(long(extra=f"{HEADER}\n"), 10, "symbol", r"\['symbol'\] not in"),
    "garbage in the timestamp column": Case(long(extra="END OF DATA,AAA,1,1,1,1,1\n"), 10, "timestamp",
                                            "cannot parse 'END OF DATA'"),
    "byte-order mark mid-file": Case(long(extra="\ufeff" + ROWS[0] + "\n"), 10, "timestamp", "cannot parse"),
    "blank line before the bad line": Case(long((8, "\n2020-01-06,BBB,51,51.5,50.2,50.8,-9")), 9, "volume",
                                           "is negative"),
    # timestamps
    "unparsable date": Case(closes((3, "2020-02-30,AAA,10.8")), 3, "timestamp", "cannot parse '2020-02-30'"),
    "naive and offset stamps mixed": Case(closes((3, "2020-01-03T00:00:00+01:00,AAA,10.8")), 3, "timestamp",
                                          "cannot parse .* like '2020-01-02' on line 2"),
    "duplicate timestamp": Case(long((3, "2020-01-02,AAA,10.5,11,10,10.8,120")), 3, "timestamp", "first at line 2"),
    "timestamps going back": Case(long((4, "2020-01-01,AAA,10.8,11.2,10.1,11.0,90")), 4, "timestamp", "is not after"),
    # numbers
    "NaN close": Case(closes((3, "2020-01-03,AAA,nan")), 3, "close", "'nan' is missing or not a number"),
    "empty close": Case(closes((3, "2020-01-03,AAA,")), 3, "close", "'' is missing"),
    "text in volume": Case(long((3, "2020-01-03,AAA,10.5,11,10,10.8,lots")), 3, "volume", "'lots' is missing"),
    "infinite close": Case(closes((6, "2020-01-03,BBB,inf")), 6, "close", "'inf' is not finite"),
    "negative close": Case(closes((4, "2020-01-06,AAA,-11.0")), 4, "close", "not positive"),
    "zero open": Case(long((4, "2020-01-06,AAA,0,11.2,10.1,11.0,90")), 4, "open", "not positive"),
    "close of 1e-300": Case(closes((4, "2020-01-06,AAA,1e-300")), 4, "close", "outside"),
    "high below low": Case(long((4, "2020-01-06,AAA,10.8,10.0,10.1,10.05,90")), 4, "high", "below low"),
    "close above high": Case(long((4, "2020-01-06,AAA,10.8,11.2,10.1,12.0,90")), 4, "close", r"outside \[low, high\]"),
    "open below low": Case(long((4, "2020-01-06,AAA,9.0,11.2,10.1,11.0,90")), 4, "open", r"outside \[low, high\]"),
    "negative volume": Case(long((9, "2020-01-07,BBB,50.8,51,50,50.1,-11")), 9, "volume", "is negative"),
    "huge volume": Case(long((9, "2020-01-07,BBB,50.8,51,50,50.1,1e300")), 9, "volume", "above 1e\\+18"),
    "unknown symbol": Case(long((7, "2020-01-06,CCC,51,51.5,50.2,50.8,9")), 7, "symbol", r"\['CCC'\] not in"),
    # other layouts and formats
    "per-instrument file with Close and close": Case(
        b"timestamp,Close,close\n2020-01-02,1,1\n2020-01-03,2,2\n", 1, "close", "both read as", name="AAA.csv",
        config={"layout": "per_instrument", "domains": {"one": ["AAA"]}}),
    "per-instrument file with one row": Case(b"timestamp,close\n2020-01-02,1\n", 2, "timestamp", "one bar only",
                                             name="AAA.csv", config={"layout": "per_instrument",
                                                                     "domains": {"one": ["AAA"]}}),
    "wide file with a symbol column twice": Case(
        b"timestamp,AAA,AAA\n2020-01-02,1,1\n2020-01-03,2,2\n", 1, "AAA", "both read as",
        config={"layout": "wide", "domains": {"one": ["AAA"]}}),
    "wide file with text among closes": Case(
        b"timestamp,AAA,BBB\n2020-01-02,1,5\n2020-01-03,n/a,5.5\n2020-01-06,1.2,5.2\n", 3, "close",
        r"\[AAA\], line 3: column 'close': 'n/a'", config={"layout": "wide"}),
    "Parquet with Close and close": Case(
        parquet(PARQUET_ROWS.assign(Close=PARQUET_ROWS["close"])), 1, "close", "both read as", name="bars.parquet",
        config={"layout": "per_instrument", "domains": {"one": ["bars"]}}),
    "Parquet with a close of 1e308": Case(
        parquet(PARQUET_ROWS.assign(close=[10.5, 1e308, 11.0])), 2, "close", "outside", name="bars.parquet",
        config={"layout": "per_instrument", "domains": {"one": ["bars"]}}),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_malformed_file_names_file_line_and_column(tmp_path, case):
    content = gzip.compress(case.content) if case.name.endswith(".gz") else case.content
    path = tmp_path / case.name
    path.write_bytes(content)
    before = path.stat().st_mtime_ns
    layout = case.config.get("layout", "long")
    config = FilesConfig(path=str(tmp_path if layout == "per_instrument" else path),
                         domains=case.config.get("domains", {"one": ["AAA"], "two": ["BBB"]}),
                         **{k: v for k, v in case.config.items() if k != "domains"})
    with pytest.raises(DataValidationError) as error:
        load_files(config)
    message = str(error.value)
    assert str(path) in message
    assert f"line {case.line}:" in message or f"line {case.line} (header)" in message, message
    assert (f"'{case.column}'" if not case.column.startswith("field") else case.column) in message, message
    assert re.search(case.reason, message), message
    assert path.read_bytes() == content and path.stat().st_mtime_ns == before


def test_the_corpus_is_large_and_covers_the_named_defects():
    assert len(CASES) >= 30
    assert sum(case.defect for case in CASES.values()) == 9


def test_a_byte_order_mark_at_the_start_is_fine(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(codecs.BOM_UTF8 + long())
    assert load_files(FilesConfig(path=str(path), domains={"one": ["AAA"], "two": ["BBB"]})).n_bars == 4


def test_an_unknown_time_zone_names_the_key(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_bytes(closes())
    with pytest.raises(DataValidationError, match="market.files.timezone 'Mars/Olympus'"):
        load_files(FilesConfig(path=str(path), domains={"one": ["AAA"], "two": ["BBB"]}, timezone="Mars/Olympus"))


def test_a_file_that_is_not_parquet_names_the_file(tmp_path):
    path = tmp_path / "AAA.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(DataValidationError, match=r"AAA.parquet: cannot be read as Parquet"):
        load_files(FilesConfig(path=str(tmp_path), layout="per_instrument", domains={"one": ["AAA"]}))


def test_a_single_common_bar_names_both_instruments(tmp_path):
    rows = ROWS[:2] + ["2020-01-03,BBB,50.5,52,50,51.0,12", "2020-01-06,BBB,51,51.5,50.2,50.8,9"]
    path = tmp_path / "bars.csv"
    path.write_bytes(long(rows=rows))
    with pytest.raises(DataValidationError, match=r"line 4: column 'timestamp': BBB .* AAA .*line 3.*one common"):
        load_files(FilesConfig(path=str(path), domains={"one": ["AAA"], "two": ["BBB"]}))
