import asyncio

import pytest

from engine_core.errors import DataError
from engine_core.live import CSV_HEADER, download_bars
from engine_core.live.download import format_ts, parse_ts

M = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01T00:00:00Z


def venue(n_bars, page=7, fail_after=None):
    """A paged endpoint over bars 0..n_bars-1 (one a minute from T0)."""
    calls = []

    async def fetch(start, end):
        calls.append(start)
        if fail_after is not None and len(calls) > fail_after:
            raise ConnectionError("dropped")
        first = max(0, -(-(start - T0) // M))
        return [
            (T0 + i * M, f"{i + 1}.10", f"{i + 1}.50", f"{i + 1}.00", f"{i + 1}.20", "3.00000000")
            for i in range(first, min(n_bars, first + page))
            if T0 + i * M < end
        ]

    return fetch, calls


def rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] == CSV_HEADER
    return lines[1:]


def test_pages_through_the_range_into_a_csv_with_prices_as_the_venue_wrote_them(tmp_path):
    fetch, calls = venue(30)
    out = tmp_path / "BTCUSDT.csv"
    result = asyncio.run(download_bars(fetch, out, T0, T0 + 20 * M, interval_ns=M, progress=False))
    got = rows(out)
    assert len(got) == 20 and result.written == 20
    assert got[0] == "2024-01-01T00:00:00Z,1.10,1.50,1.00,1.20,3.00000000"
    assert got[-1].startswith("2024-01-01T00:19:00Z,20.10")
    assert len(calls) == 3


def test_an_interrupted_download_resumes_without_duplicating_rows(tmp_path):
    out = tmp_path / "BTCUSDT.csv"
    fetch, _ = venue(30, fail_after=2)
    with pytest.raises(ConnectionError):
        asyncio.run(download_bars(fetch, out, T0, T0 + 30 * M, progress=False))
    assert len(rows(out)) == 14
    with open(out, "a") as f:
        f.write("2024-01-01T00:14:00Z,14.1")  # killed mid-line
    fetch, calls = venue(30)
    result = asyncio.run(download_bars(fetch, out, T0, T0 + 30 * M, progress=False))
    assert result.resumed_after == T0 + 13 * M
    assert calls[0] == T0 + 13 * M + 1
    times = [r.split(",")[0] for r in rows(out)]
    assert times == [format_ts(T0 + i * M) for i in range(30)]


def test_running_again_over_a_complete_file_adds_nothing(tmp_path):
    out = tmp_path / "x.csv"
    fetch, _ = venue(10)
    asyncio.run(download_bars(fetch, out, T0, T0 + 10 * M, progress=False))
    before = out.read_text()
    result = asyncio.run(download_bars(fetch, out, T0, T0 + 10 * M, progress=False))
    assert result.written == 0 and out.read_text() == before


def test_a_file_of_another_kind_is_refused(tmp_path):
    out = tmp_path / "x.csv"
    out.write_text("a,b\n1,2\n")
    fetch, _ = venue(10)
    with pytest.raises(DataError, match="x.csv: not a bar file"):
        asyncio.run(download_bars(fetch, out, T0, T0 + 10 * M, progress=False))


def test_the_csv_source_reads_the_file_as_it_is(tmp_path):
    from engine_plugin_csv.config import CsvConfig
    from engine_plugin_csv.source import CsvSource

    fetch, _ = venue(50)
    asyncio.run(download_bars(fetch, tmp_path / "BTCUSDT.csv", T0, T0 + 50 * M, progress=False))
    src = CsvSource(CsvConfig(path="."), symbols=["BTCUSDT"], base_dir=tmp_path)
    chunks = list(src.history())
    ts = [int(t) for c in chunks for t in c.ts]
    assert ts == [T0 + i * M for i in range(50)]
    assert float(chunks[0].close[3]) == 4.2


def test_times_round_trip():
    assert parse_ts(format_ts(T0 + 1_500_000_000)) == T0 + 1_500_000_000
