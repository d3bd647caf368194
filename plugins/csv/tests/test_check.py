"""``check()``: what ``engine validate`` learns from the files without reading them whole."""

from __future__ import annotations

import re

import pytest

from engine_core.errors import DataError

HEADER = "datetime,open,high,low,close,volume\n"


def rows(*days: int) -> str:
    return HEADER + "".join(f"2024-01-{d:02d} 00:00:00,1,1,1,1,1\n" for d in days)


def test_good_files_pass_and_say_what_was_not_read(write, source) -> None:
    write("data/BTCUSDT.csv", rows(1, 2, 3))
    write("data/ETHUSDT.csv", rows(1) + "2024-01-02 00:00:00,oops,1,1,1,1\n")
    unchecked = source(["BTCUSDT", "ETHUSDT"], path="data").check()
    assert unchecked == ["the rows after each file's first (they are checked as the run reads them)"]


@pytest.mark.parametrize(
    "path, message",
    [
        ("nothing", r"source\.path: no CSV files at 'nothing' \(in .*\): no such file or directory$"),
        ("empty", r"source\.path: no CSV files at 'empty' \(in .*\): a directory without \*\.csv files$"),
        ("*.txt", r"source\.path: no CSV files at '\*\.txt' \(in .*\): no file matches it$"),
    ],
)
def test_no_files_names_the_key(tmp_path, source, path: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=message):
        source(path=path).check()


def test_symbol_without_a_file(write, source) -> None:
    write("BTCUSDT.csv", rows(1))
    with pytest.raises(DataError, match=r"^source\.path: no data for ETHUSDT: no file of '\.'"):
        source(["BTCUSDT", "ETHUSDT"], path=".").check()


def test_unreadable_header_and_bad_first_row(write, source) -> None:
    path = write("BTCUSDT.csv", "when,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: missing time column")):
        source(path="BTCUSDT.csv").check()
    path = write("BTCUSDT.csv", HEADER + "\n2024-01-01 00:00:00,1,1,1,0,1\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: close 0 is not a positive price")):
        source(path="BTCUSDT.csv").check()
    assert source(path="BTCUSDT.csv", on_bad_row="skip").check()  # skipped at run time, as the run would


@pytest.mark.parametrize("window", [{"start": "2024-02-01"}, {"end": "2023-12-01"}])
def test_window_outside_the_files(write, source, window: dict) -> None:
    write("BTCUSDT-a.csv", rows(1, 2))
    write("BTCUSDT-b.csv", rows(3, 4))
    with pytest.raises(
        DataError,
        match=r"no data for BTCUSDT in .*BTCUSDT-a\.csv, .*BTCUSDT-b\.csv from .*: "
        r"the files run from 2024-01-01T00:00:00Z to 2024-01-04T00:00:00Z$",
    ):
        source(path="*.csv", **window).check()
    assert source(path="*.csv", start="2024-01-04").check()


def test_symbol_column_files_say_symbols_were_not_checked(write, source) -> None:
    write("all.csv", "symbol,timestamp,open,high,low,close,volume\nBTCUSDT,1704067200,1,1,1,1,1\n")
    unchecked = source(["BTCUSDT", "ETHUSDT"], path="all.csv", symbol_column="symbol").check()
    assert "that each symbol has rows in 'all.csv' (each row names its symbol)" in unchecked


def test_check_reads_only_the_head_and_tail(write, source) -> None:
    middle = "".join(f"2024-01-01 {h:02d}:{m:02d}:00,1,1,1,1,1\n" for h in range(1, 20) for m in range(60))
    write(
        "BTCUSDT.csv",
        HEADER
        + "2024-01-01 00:00:00,1,1,1,1,1\n"
        + middle.replace("05:05:00,1", "05:05:00,x")
        + "2024-01-02 00:00:00,1,1,1,1,1\n",
    )
    src = source(path="BTCUSDT.csv")
    assert src.check()
    with pytest.raises(DataError, match="bad open"):
        list(src.history())
