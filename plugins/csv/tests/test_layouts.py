"""Each common layout reads as it is: ISO header, epoch numbers, Binance dumps."""

from __future__ import annotations

import pytest

T0 = "2024-01-01T00:00:00"
T1 = "2024-01-01T00:01:00"


def test_iso_header_layout(write, read, ns, bars) -> None:
    write(
        "BTCUSDT.csv",
        "datetime,open,high,low,close,volume\n"
        "2024-01-01 00:00:00,1,2,0.5,1.5,10\n2024-01-01 00:01:00,1.5,2.5,1,2,20.25\n",
    )
    assert bars(read(path="BTCUSDT.csv")) == [
        ("BTCUSDT", ns(T0), 1.0, 2.0, 0.5, 1.5, 10.0),
        ("BTCUSDT", ns(T1), 1.5, 2.5, 1.0, 2.0, 20.25),
    ]


@pytest.mark.parametrize(
    "stamp, expected",
    [
        ("2024-01-01T00:00:00Z", T0),
        ("2024-01-01T02:00:00+02:00", T0),
        ("2023-12-31T19:00:00-05:00", T0),
        ("2024-01-01T00:00:00.250Z", "2024-01-01T00:00:00.250"),
        ("2024-01-01", T0),
    ],
)
def test_iso_times_with_and_without_offsets(write, read, ns, bars, stamp: str, expected: str) -> None:
    write("BTCUSDT.csv", f"datetime,open,high,low,close,volume\n{stamp},1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [ns(expected)]


@pytest.mark.parametrize(
    "name, scale",
    [("timestamp", 1), ("time", 1_000), ("date", 1_000_000), ("open_time", 1_000_000_000)],
)
def test_epoch_units_detected_by_magnitude(write, read, ns, bars, name: str, scale: int) -> None:
    seconds = 1_704_067_200
    write(
        "BTCUSDT.csv",
        f"{name},open,high,low,close,volume\n{seconds * scale},1,1,1,1,1\n{(seconds + 60) * scale},1,1,1,1,1\n",
    )
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [ns(T0), ns(T1)]


def test_epoch_unit_decided_per_value(write, read, ns) -> None:
    # Binance's kline dumps moved from milliseconds to microseconds in 2025: one history holds both
    write("BTCUSDT.csv", "open_time,open,high,low,close,volume\n1704067200000,1,1,1,1,1\n1704067260000000,1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [ns(T0), ns(T1)]


def test_epoch_nanoseconds_stay_exact(write, read, ns, bars) -> None:
    write("BTCUSDT.csv", "ts,open,high,low,close,volume\n1704067200123456789,1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [1704067200123456789]


def test_fractional_epoch_seconds(write, read, ns, bars) -> None:
    write("BTCUSDT.csv", "timestamp,open,high,low,close,volume\n1704067200.5,1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [ns(T0) + 500_000_000]


def test_explicit_time_unit(write, read, ns, bars) -> None:
    write("BTCUSDT.csv", "timestamp,open,high,low,close,volume\n28401120,1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv", time_unit="ms")[0].ts.tolist() == [28401120 * 10**6]
    assert read(path="BTCUSDT.csv")[0].ts.tolist() == [28401120 * 10**9]


def test_binance_headerless_ms_and_us(write, read, ns, bars) -> None:
    ms = "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68,1704067259999,53957248.97,47134,682.57,28957416.82,0\n"
    us = "1735689600000000,93576.00,93610.93,93537.50,93610.93,8.21827,1735689659999999,768978.78,1280,4.02,376241.24,0\n"
    write("BTCUSDT-1m-2024-01.csv", ms)
    write("BTCUSDT-1m-2025-01.csv", us)
    got = bars(read(path="BTCUSDT-1m-*.csv"))
    assert got == [
        ("BTCUSDT", ns(T0), 42283.58, 42554.57, 42261.02, 42475.23, 1271.68),
        ("BTCUSDT", ns("2025-01-01T00:00:00"), 93576.0, 93610.93, 93537.5, 93610.93, 8.21827),
    ]


def test_headerless_iso_rows(write, read, ns, bars) -> None:
    write("BTCUSDT.csv", "2024-01-01 00:00:00,1,2,0.5,1.5,10\n")
    assert bars(read(path="BTCUSDT.csv")) == [("BTCUSDT", ns(T0), 1.0, 2.0, 0.5, 1.5, 10.0)]


def test_columns_by_name_and_position_in_any_order(write, read, ns, bars) -> None:
    write("BTCUSDT.csv", "Vol;C;L;H;O;When\n10;1.5;0.5;2;1;2024-01-01T00:00:00Z\n")
    columns = {"time": "when", "open": "O", "high": "h", "low": 2, "close": "C", "volume": 0}
    got = bars(read(path="BTCUSDT.csv", delimiter=";", columns=columns))
    assert got == [("BTCUSDT", ns(T0), 1.0, 2.0, 0.5, 1.5, 10.0)]


def test_quoted_fields_crlf_and_blank_lines(write, read, ns, bars) -> None:
    write(
        "BTCUSDT.csv",
        '"datetime","open","high","low","close","volume"\r\n\r\n'
        '"2024-01-01 00:00:00",1,1,1,1,1\r\n\r\n2024-01-01 00:01:00,1,1,1,1,1',
    )
    assert [bar[1] for bar in bars(read(path="BTCUSDT.csv"))] == [ns(T0), ns(T1)]


def test_extra_columns_are_ignored(write, read, ns, bars) -> None:
    write(
        "BTCUSDT.csv",
        "datetime,venue,open,high,low,close,volume,note\n2024-01-01 00:00:00,binance,1,1,1,1,1,hello\n",
    )
    assert len(read(path="BTCUSDT.csv")[0]) == 1


def test_timezone_applies_to_naive_datetimes_only(write, read, ns, bars) -> None:
    write(
        "BTCUSDT.csv",
        "datetime,open,high,low,close,volume\n2024-07-01 02:00:00,1,1,1,1,1\n2024-12-01 01:00:00,1,1,1,1,1\n",
    )
    write("ETHUSDT.csv", "datetime,open,high,low,close,volume\n2024-07-01T00:00:00Z,1,1,1,1,1\n")
    chunks = read(["BTCUSDT", "ETHUSDT"], path=".", timezone="Europe/Berlin")
    by_symbol = {c.symbol: c.ts.tolist() for c in chunks}
    assert by_symbol["BTCUSDT"] == [ns("2024-07-01T00:00:00"), ns("2024-12-01T00:00:00")]
    assert by_symbol["ETHUSDT"] == [ns("2024-07-01T00:00:00")]


def test_start_inclusive_end_exclusive(write, read, ns, bars) -> None:
    rows = "".join(f"2024-01-0{d} 00:00:00,1,1,1,1,1\n" for d in range(1, 6))
    write("BTCUSDT.csv", "datetime,open,high,low,close,volume\n" + rows)
    got = read(path="BTCUSDT.csv", start="2024-01-02", end="2024-01-04")
    assert got[0].ts.tolist() == [ns("2024-01-02T00:00:00"), ns("2024-01-03T00:00:00")]
    got = read(path="BTCUSDT.csv", start="2024-01-02T12:00:00", timezone="Asia/Tokyo")
    assert got[0].ts.tolist()[0] == ns("2024-01-02T15:00:00")  # 2024-01-03 00:00 in Tokyo


PANDAS = (
    # what DataFrame.to_csv() writes for a frame indexed by an unnamed DatetimeIndex
    ",Open,High,Low,Close,Volume\n"
    "2004-08-19,100.0,104.06,95.96,100.34,22351900\n"
    "2004-08-20,101.01,109.08,100.5,108.31,18428700\n"
)


def test_pandas_to_csv_reads_as_it_is(write, read, bars) -> None:
    write("GOOG.csv", PANDAS)
    as_is = bars(read(["GOOG"], path="GOOG.csv"))
    assert as_is == bars(read(["GOOG"], path="GOOG.csv", columns={"time": 0}))
    assert as_is[1][2:] == (101.01, 109.08, 100.5, 108.31, 18428700.0)


def test_pandas_to_csv_with_intraday_times_and_offsets(write, read, ns) -> None:
    write(
        "EURUSD.csv",
        ",Open,High,Low,Close,Volume\n"
        "2024-01-01 00:00:00+00:00,1.0716,1.0720,1.0710,1.0715,1400\n"
        "2024-01-01 02:01:00+02:00,1.0715,1.0721,1.0712,1.0719,1200\n",
    )
    assert read(["EURUSD"], path="EURUSD.csv")[0].ts.tolist() == [ns(T0), ns(T1)]


@pytest.mark.parametrize("header", [True, False])
def test_utf8_byte_order_mark_is_read(tmp_path, read, ns, bars, header: bool) -> None:
    text = ("datetime,open,high,low,close,volume\n" if header else "") + f"{T0},1,2,0.5,1.5,10\n{T1},1,1,1,1,1\n"
    (tmp_path / "BTCUSDT.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert bars(read(path="BTCUSDT.csv"))[0] == ("BTCUSDT", ns(T0), 1.0, 2.0, 0.5, 1.5, 10.0)
