"""Bad input: one clear DataError naming file and line, or (skip) skipped and counted."""

from __future__ import annotations

import re

import numpy as np
import pytest

from engine_core.errors import DataError

HEADER = "datetime,open,high,low,close,volume\n"


def good(minute: int) -> str:
    return f"2024-01-01 {minute // 60:02d}:{minute % 60:02d}:00,10,12,9,11,5\n"


BAD_ROWS = {
    "fewer fields": (
        "2024-01-01 00:03:00,10,12,9,11\n",
        "expected 6 fields, got 5",
        "wrong field count",
    ),
    "more fields": (
        "2024-01-01 00:03:00,10,12,9,11,5,7\n",
        "expected 6 fields, got 7",
        "wrong field count",
    ),
    "text": ("2024-01-01 00:03:00,ten,12,9,11,5\n", "bad open: invalid value 'ten'", "bad value"),
    "bad time": (
        "2024-01-01 25:03:00,10,12,9,11,5\n",
        "bad time: invalid value '2024-01-01 25:03:00'",
        "bad value",
    ),
    "empty value": ("2024-01-01 00:03:00,10,12,9,,5\n", "missing value in close", "missing value"),
    "nan": ("2024-01-01 00:03:00,10,nan,9,11,5\n", "missing value in high", "missing value"),
    "empty time": (",10,12,9,11,5\n", "missing value in time", "missing value"),
    "duplicate": (good(2), "duplicate time 2024-01-01T00:02:00Z", "duplicate time"),
    "backwards": (
        good(1),
        "time 2024-01-01T00:01:00Z is before the previous row's 2024-01-01T00:02:00Z",
        "time going backwards",
    ),
    "high < low": ("2024-01-01 00:03:00,10,8,9,9,5\n", "high 8 < low 9", "high < low"),
    "open outside": (
        "2024-01-01 00:03:00,13,12,9,11,5\n",
        "open 13 or close 11 outside [low 9, high 12]",
        "open/close outside [low, high]",
    ),
    "negative volume": (
        "2024-01-01 00:03:00,10,12,9,11,-1\n",
        "negative volume -1",
        "negative volume",
    ),
    "zero price": ("2024-01-01 00:03:00,10,12,0,11,5\n", "low 0 is not a positive price", "price not positive"),
    "negative prices": (
        "2024-01-01 00:03:00,-10,-9,-12,-11,5\n",
        "open -10 is not a positive price",
        "price not positive",
    ),
    "inf": (
        "2024-01-01 00:03:00,10,inf,9,11,5\n",
        "high is inf: prices and volumes must be finite",
        "infinite value",
    ),
    "-inf volume": (
        "2024-01-01 00:03:00,10,12,9,11,-inf\n",
        "volume is -inf: prices and volumes must be finite",
        "infinite value",
    ),
}


def file_with(bad: str) -> str:
    """Header, three good rows, the bad row (line 5), two more good rows."""
    return HEADER + good(0) + good(1) + good(2) + bad + good(4) + good(5)


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_row_is_an_error_naming_file_and_line(write, read, case: str) -> None:
    row, detail, _ = BAD_ROWS[case]
    path = write("BTCUSDT.csv", file_with(row))
    with pytest.raises(DataError) as info:
        read(path="BTCUSDT.csv")
    assert str(info.value) == f"{path}:5: {detail}"


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_row_is_skipped_and_counted(write, source, case: str) -> None:
    row, detail, reason = BAD_ROWS[case]
    path = write("BTCUSDT.csv", file_with(row))
    src = source(path="BTCUSDT.csv", on_bad_row="skip")
    chunks = list(src.history())
    assert [int(t) % 3_600_000_000_000 // 60_000_000_000 for c in chunks for t in c.ts] == [
        0,
        1,
        2,
        4,
        5,
    ]
    assert src.stats() == {
        "csv": {
            "files": 1,
            "rows": 5,
            "skipped_rows": 1,
            "skipped_by_reason": {reason: 1},
            "first_skipped": f"{path}:5: {detail}",
        }
    }


def test_time_in_a_dst_gap_is_a_bad_row(write, read) -> None:
    write("BTCUSDT.csv", HEADER + "2024-03-31 01:30:00,1,1,1,1,1\n2024-03-31 02:30:00,1,1,1,1,1\n")
    with pytest.raises(
        DataError,
        match=r"BTCUSDT\.csv:3: bad time: 2024-03-31 02:30:00 does not exist in Europe/Berlin \(a DST gap\)$",
    ):
        read(path="BTCUSDT.csv", timezone="Europe/Berlin")


def test_earliest_bad_row_of_a_block_is_reported(write, read) -> None:
    write("BTCUSDT.csv", HEADER + good(0) + good(0) + "x\n")
    with pytest.raises(DataError, match=r"BTCUSDT\.csv:3: duplicate time"):
        read(path="BTCUSDT.csv")


def test_skip_counts_every_reason_and_keeps_the_first(write, source) -> None:
    rows = [
        good(0),
        "oops\n",
        good(2),
        good(1),
        "2024-01-01 00:03:00,10,8,9,9,5\n",
        "\n",
        good(4),
        good(4),
    ]
    path = write("BTCUSDT.csv", HEADER + "".join(rows))
    src = source(path="BTCUSDT.csv", on_bad_row="skip")
    assert sum(len(c) for c in src.history()) == 3
    assert src.stats()["csv"] == {
        "files": 1,
        "rows": 3,
        "skipped_rows": 4,
        "skipped_by_reason": {
            "duplicate time": 1,
            "high < low": 1,
            "time going backwards": 1,
            "wrong field count": 1,
        },
        "first_skipped": f"{path}:3: expected 6 fields, got 1",
    }


def big_file(rows: int, blank_every: int = 0) -> list[str]:
    """Minute rows from 2024-01-01, one line each, with a blank line after every ``blank_every``."""
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(rows) * np.timedelta64(60, "s")
    lines: list[str] = []
    for i, stamp in enumerate(np.datetime_as_string(stamps, unit="s")):
        lines.append(f"{stamp},10,12,9,11,5")
        if blank_every and i % blank_every == 0:
            lines.append("")
    return lines


@pytest.mark.parametrize("chunk_rows", [1, 7, 65_536])
@pytest.mark.parametrize("kind", ["malformed", "duplicate"])
def test_line_numbers_stay_exact_past_the_first_chunk(write, read, chunk_rows: int, kind: str) -> None:
    lines = [
        "datetime,open,high,low,close,volume",
        *big_file(150_000 if chunk_rows == 65_536 else 2_000, 97),
    ]
    at = len(lines) - 3 if lines[-3] else len(lines) - 4
    lines[at] = "1,2" if kind == "malformed" else lines[at - 1]
    write("BTCUSDT.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError) as info:
        read(path="BTCUSDT.csv", chunk_rows=chunk_rows)
    assert re.match(rf".*BTCUSDT\.csv:{at + 1}: ", str(info.value)), (at + 1, str(info.value))


def test_large_file_streams_in_chunks_of_about_chunk_rows(write, read) -> None:
    write("BTCUSDT.csv", HEADER + "\n".join(big_file(200_000)) + "\n")
    chunks = read(path="BTCUSDT.csv")
    assert sum(map(len, chunks)) == 200_000
    assert len(chunks) >= 3 and max(map(len, chunks)) <= 70_000


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file (no data rows)"),
        ("\n\r\n\n", "empty file (no data rows)"),
        (HEADER, "empty file (no data rows)"),
        (
            "datetime,open,high,low,close\n2024-01-01,1,1,1,1\n",
            "1: missing volume column (header: datetime,open,high,low,close)",
        ),
        ("when,open,high,low,close,volume\n2024-01-01,1,1,1,1,1\n", "1: missing time column"),
    ],
)
def test_file_level_errors(write, read, text: str, message: str) -> None:
    path = write("BTCUSDT.csv", text)
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}:{message}" if message[0].isdigit() else f"{path}: {message}"),
    ):
        read(path="BTCUSDT.csv", on_bad_row="skip")


def test_missing_configured_column(write, read) -> None:
    path = write("BTCUSDT.csv", HEADER + good(0))
    with pytest.raises(DataError, match=re.escape(f"{path}:1: missing column 'vol' for volume")):
        read(path="BTCUSDT.csv", columns={"volume": "vol"})
    with pytest.raises(DataError, match=re.escape(f"{path}:1: no column 9 for open")):
        read(path="BTCUSDT.csv", columns={"open": 9})


BINARY = {
    "gzip": b"\x1f\x8b\x08\x00\x12\x34\x56\x78\x00\x03" + bytes(range(256)) * 8,
    "no newline": b"A" * (2 << 20),
    "control bytes": b"datetime,open,high,low,close,volume\n\x01\x02\x03,1,1,1,1,1\n",
}


@pytest.mark.parametrize("case", BINARY)
def test_binary_file_is_one_short_line_without_raw_bytes(tmp_path, read, case: str) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_bytes(BINARY[case])
    with pytest.raises(DataError) as info:
        read(path="BTCUSDT.csv")
    message = str(info.value)
    assert message.startswith(f"{path}:") and "not a CSV text file" in message
    assert message.isprintable() and len(message) < len(str(path)) + 150, message


def test_garbage_value_is_shown_escaped(tmp_path, read) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_bytes(HEADER.encode() + good(0).encode() + b"2024-01-01 00:01:00,\xff\xfe" + b"9" * 300 + b",1,1,1,1\n")
    with pytest.raises(DataError) as info:
        read(path="BTCUSDT.csv")
    message = str(info.value)
    assert message.startswith(f"{path}:3: bad open: invalid value ") and message.endswith("...")
    assert message.isprintable() and len(message) < len(str(path)) + 100, message


def test_header_that_is_not_utf8_is_shown_escaped(tmp_path, read) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_bytes("datetime,open,high,low,clôture,volume\n2024-01-01,1,1,1,1,1\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read(path="BTCUSDT.csv")
    assert str(info.value) == f"{path}:1: missing close column (header: datetime,open,high,low,cl\\xf4ture,volume)"


def test_utf16_file_says_what_to_do(tmp_path, read) -> None:
    path = tmp_path / "BTCUSDT.csv"
    path.write_bytes((HEADER + good(0)).encode("utf-16"))
    with pytest.raises(DataError, match=re.escape(f"{path}: UTF-16 text; save the file as UTF-8")):
        read(path="BTCUSDT.csv")


def test_a_block_of_only_bad_rows_is_skipped_whole(write, source) -> None:
    write("BTCUSDT.csv", HEADER + "2024-01-01 00:00:00,oops,1,1,1,1\n")
    src = source(path="BTCUSDT.csv", on_bad_row="skip")
    with pytest.raises(DataError, match="no data for BTCUSDT"):
        list(src.history())
    assert src.stats()["csv"]["skipped_by_reason"] == {"bad value": 1}
