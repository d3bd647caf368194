"""Chunks of several symbols interleave by time; each symbol's chunks stay in order."""

from __future__ import annotations

import numpy as np
from engine_plugin_csv.merge import demux, merge_by_time

from engine_core.model import BarChunk


def chunk(symbol: str, *ts: int) -> BarChunk:
    ones = np.ones(len(ts))
    return BarChunk(symbol, np.array(ts, dtype=np.int64), ones, ones, ones, ones, ones)


def test_merge_orders_by_first_timestamp_with_ties_in_stream_order() -> None:
    a = [chunk("A", 1, 2, 3), chunk("A", 10, 11)]
    b = [chunk("B", 1, 5), chunk("B", 6, 7), chunk("B", 12)]
    got = [(c.symbol, int(c.ts[0])) for c in merge_by_time([iter(a), iter(b)])]
    assert got == [("A", 1), ("B", 1), ("B", 6), ("A", 10), ("B", 12)]


def test_demux_splits_a_mixed_stream_and_buffers_what_waits() -> None:
    mixed = [chunk("B", 1), chunk("B", 2), chunk("A", 1), chunk("A", 3)]
    streams = demux(mixed, ["A", "B"])
    merged = [(c.symbol, int(c.ts[0])) for c in merge_by_time(streams)]
    assert merged == [("A", 1), ("B", 1), ("B", 2), ("A", 3)]


def test_source_merges_files_in_event_time_order(write, read) -> None:
    header = "timestamp,open,high,low,close,volume\n"
    write("AAA.csv", header + "".join(f"{t},1,1,1,1,1\n" for t in range(1_000_000, 1_000_100)))
    write("BBB.csv", header + "".join(f"{t},1,1,1,1,1\n" for t in range(1_000_050, 1_000_120, 2)))
    chunks = read(["AAA", "BBB"], path=".", chunk_rows=7)
    firsts = [int(c.ts[0]) for c in chunks]
    assert firsts == sorted(firsts)
    for symbol in ("AAA", "BBB"):
        ts = np.concatenate([c.ts for c in chunks if c.symbol == symbol])
        assert (np.diff(ts) > 0).all()
    assert sum(len(c) for c in chunks) == 100 + 35
    assert all(len(c) <= 8 for c in chunks)
