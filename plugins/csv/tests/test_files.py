"""Which files and rows belong to which symbol; globs, directories, symbol columns."""

from __future__ import annotations

import pytest

from engine_core.errors import DataError

HEADER = "datetime,open,high,low,close,volume\n"


def rows(*days: int) -> str:
    return HEADER + "".join(f"2024-01-{d:02d} 00:00:00,1,1,1,1,1\n" for d in days)


def test_directory_reads_csv_files_for_engine_symbols_only(write, read) -> None:
    write("data/BTCUSDT.csv", rows(1))
    write("data/ETHUSDT.csv", rows(2))
    write("data/SOLUSDT.csv", "not even csv")
    write("data/notes.txt", "ignored")
    chunks = read(["ETHUSDT", "BTCUSDT"], path="data")
    assert [c.symbol for c in chunks] == ["BTCUSDT", "ETHUSDT"]


def test_glob_and_several_files_per_symbol_in_name_order(write, read, ns) -> None:
    write("BTCUSDT-1m-2024-02.csv", rows(3))
    write("BTCUSDT-1m-2024-01.csv", rows(1, 2))
    write("BTCUSDTX-1m-2024-01.csv", rows(9))  # another symbol
    chunks = read(path="BTCUSDT*-1m-*.csv")
    assert [t for c in chunks for t in c.ts.tolist()] == [
        ns("2024-01-01T00:00"),
        ns("2024-01-02T00:00"),
        ns("2024-01-03T00:00"),
    ]


def test_files_out_of_time_order_are_an_error_naming_the_later_file(write, read) -> None:
    write("BTCUSDT-a.csv", rows(5))
    write("BTCUSDT-b.csv", rows(1))
    with pytest.raises(DataError, match=r"BTCUSDT-b\.csv:2: time 2024-01-01T00:00:00Z is before"):
        read(path="*.csv")


def test_symbol_key_for_a_single_file(write, read) -> None:
    write("prices.csv", rows(1))
    assert read(path="prices.csv", symbol="btcusdt")[0].symbol == "BTCUSDT"


def test_symbol_pattern(write, read) -> None:
    write("binance_spot_ETHUSDT_1m.csv", rows(1))
    chunks = read(["ETHUSDT"], path=".", symbol_pattern=r"_(?P<symbol>[A-Z]+USDT)_")
    assert chunks[0].symbol == "ETHUSDT"


def test_symbol_column_file_emits_engine_symbols_only(write, read, bars) -> None:
    write(
        "all.csv",
        "symbol,timestamp,open,high,low,close,volume\n"
        "BTCUSDT,1704067200000,1,1,1,1,1\nXRPUSDT,1704067200000,9,9,9,9,9\n"
        "ETHUSDT,1704067200000,2,2,2,2,2\nETHUSDT,1704067260000,3,3,3,3,3\n"
        "BTCUSDT,1704067260000,4,4,4,4,4\n",
    )
    got = bars(read(["BTCUSDT", "ETHUSDT"], path="all.csv", symbol_column="symbol"))
    assert [(b[0], b[2]) for b in got] == [
        ("BTCUSDT", 1.0),
        ("BTCUSDT", 4.0),
        ("ETHUSDT", 2.0),
        ("ETHUSDT", 3.0),
    ]


def test_symbol_without_a_file_is_named(write, read) -> None:
    write("BTCUSDT.csv", rows(1))
    with pytest.raises(DataError, match=r"no data for ETHUSDT: no file of '\.'"):
        read(["BTCUSDT", "ETHUSDT"], path=".")


def test_symbol_without_rows_in_the_window_is_named(write, read) -> None:
    path = write("BTCUSDT.csv", rows(1))
    with pytest.raises(DataError, match=f"no data for BTCUSDT in {path} from 2024-02-01"):
        read(path="BTCUSDT.csv", start="2024-02-01")


def test_symbol_missing_from_a_symbol_column_file(write, read) -> None:
    write("all.csv", "symbol,timestamp,open,high,low,close,volume\nBTCUSDT,1704067200,1,1,1,1,1\n")
    with pytest.raises(DataError, match="no data for ETHUSDT in .*all.csv"):
        read(["BTCUSDT", "ETHUSDT"], path="all.csv", symbol_column="symbol")


def test_nothing_at_path(read) -> None:
    with pytest.raises(DataError, match="no CSV files at 'missing/\\*.csv'"):
        read(path="missing/*.csv")


def test_same_files_give_the_same_chunks(write, read, bars) -> None:
    for i, symbol in enumerate(["AAA", "BBB", "CCC"]):
        write(f"{symbol}.csv", rows(*range(1 + i, 20)))
    first = bars(read(["CCC", "AAA", "BBB"], path=".", chunk_rows=3))
    assert bars(read(["CCC", "AAA", "BBB"], path=".", chunk_rows=3)) == first
