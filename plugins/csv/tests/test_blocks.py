"""How a file is cut into blocks, and its columns taken out of Arrow's buffers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

HEADER = "datetime,open,high,low,close,volume\n"


def minutes(count: int) -> list[str]:
    stamps = np.datetime64("2024-01-01T00:00") + np.arange(count) * np.timedelta64(60, "s")
    return [str(s).replace("T", " ") for s in stamps.astype("datetime64[s]")]


def test_a_line_longer_than_a_block_and_a_last_line_without_newline(write, read, bars) -> None:
    times = minutes(4)
    long = "10.1234567890123" + "0" * 200
    text = HEADER + f"{times[0]},1,1,1,1,1\n{times[1]},{long},11,9,10.5,5\n{times[2]},2,2,2,2,2\n{times[3]},3,3,3,3,3"
    write("BTCUSDT.csv", text)
    got = bars(read(path="BTCUSDT.csv", chunk_rows=1))  # blocks of 30 bytes (line 2's): line 3 is 248
    assert [b[2] for b in got] == [1.0, 10.1234567890123, 2.0, 3.0]


def test_values_missing_past_arrows_first_batch_name_their_line(write, source) -> None:
    # 100,000 rows of about 40 bytes in a block: pyarrow parses it in 1 MiB
    # batches, so each column comes in several pieces
    lines = [f"{t},10,12,9,11,5" for t in minutes(100_000)]
    lines[70_000] = lines[70_000].replace(",11,5", ",,5")
    lines[90_000] = "," + lines[90_000].partition(",")[2]
    path = write("BTCUSDT.csv", HEADER + "\n".join(lines) + "\n")
    src = source(path="BTCUSDT.csv", chunk_rows=65_536 * 2, on_bad_row="skip")
    chunks = list(src.history())
    ts = np.concatenate([c.ts for c in chunks])
    assert len(ts) == 99_998 and (np.diff(ts) > 0).all()
    assert np.concatenate([c.close for c in chunks]).min() == 11.0
    assert src.stats()["csv"]["skipped_by_reason"] == {"missing value": 2}
    assert src.stats()["csv"]["first_skipped"] == f"{path}:70002: missing value in close"


def test_symbol_column_read_across_batches(write, read) -> None:
    # one block of 2.3 MB, parsed in 1 MiB batches: the first ones name
    # BTCUSDT and XRPUSDT only, the last ETHUSDT too, each in its own dictionary
    early = [f"{'BTCUSDT' if i % 2 else 'XRPUSDT'},{1704067200 + i * 60},1,1,1,1,1" for i in range(60_000)]
    late = [f"{'ETHUSDT' if i % 2 else 'BTCUSDT'},{1704067200 + i * 60},2,2,2,2,2" for i in range(60_000, 80_000)]
    write("all.csv", "symbol,timestamp,open,high,low,close,volume\n" + "\n".join(early + late) + "\n")
    chunks = read(["ETHUSDT", "BTCUSDT"], path="all.csv", symbol_column="symbol", chunk_rows=1 << 20)
    count = {s: sum(len(c) for c in chunks if c.symbol == s) for s in ("BTCUSDT", "ETHUSDT")}
    assert count == {"BTCUSDT": 40_000, "ETHUSDT": 10_000}
    eth = np.concatenate([c.open for c in chunks if c.symbol == "ETHUSDT"])
    assert (eth == 2.0).all()


def test_a_utc_file_is_read_without_pyarrow_compute(write) -> None:
    path = write("BTCUSDT.csv", HEADER + "".join(f"{t},1,1,1,1,1\n" for t in minutes(3)))
    code = (
        "import sys\nfrom pathlib import Path\nfrom engine_plugin_csv import CsvConfig, CsvSource\n"
        f"src = CsvSource(CsvConfig(path='BTCUSDT.csv'), symbols=['BTCUSDT'], base_dir=Path({str(path.parent)!r}))\n"
        "print(sum(len(c) for c in src.history()), 'pyarrow.compute' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["3", "False"]


def test_naive_times_in_a_zone_are_read_with_pyarrow_compute(write, read, ns) -> None:
    write("BTCUSDT.csv", HEADER + "2024-07-01 02:00:00,1,1,1,1,1\n")
    assert read(path="BTCUSDT.csv", timezone="Europe/Berlin")[0].ts.tolist() == [ns("2024-07-01T00:00")]


def test_blocks_are_arrow_memory(tmp_path: Path) -> None:
    from engine_plugin_csv.parse import open_arrow, read_blocks

    path = tmp_path / "x.csv"
    path.write_bytes(b"a\nbb\n\nccc\nd")
    with open_arrow(str(path)) as file:
        blocks = list(read_blocks(file, 1, 4))
    assert [(b.line, b.data.to_pybytes()) for b in blocks] == [(1, b"a\n"), (2, b"bb\n\n"), (4, b"ccc\n"), (5, b"d\n")]
