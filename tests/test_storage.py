from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_core.model import Bar, BarChunk
from engine_core.storage import WRITE_BEHIND, BarWindow


def chunk(start: int, n: int) -> BarChunk:
    i = np.arange(start, start + n)
    f = i.astype(float)
    return BarChunk("S", i.astype(np.int64), f, f + 1, f - 1, f + 0.5, f * 0 + 1)


def last(w: BarWindow, column: str, n: int | None = None) -> list:
    """The last ``n`` stored values of a column (all if None), oldest first."""
    return list(w._ring.snapshot(n)[column])


def test_live_bars_keep_the_last_capacity_bars():
    w = BarWindow("S", 3)
    for i in range(5):
        w.extend(BarChunk.from_bars([Bar("S", i, i, i, i, float(i), 1)]))
    assert last(w, "close") == [2.0, 3.0, 4.0]
    assert last(w, "ts", 2) == [3, 4]
    assert len(w) == 3


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 20), st.lists(st.integers(0, 30), max_size=8))
def test_extend_equals_reference(capacity, sizes):
    w = BarWindow("S", capacity)
    start = 0
    for n in sizes:
        w.extend(chunk(start, n))
        start += n
    expected = list(range(max(0, start - capacity), start))
    assert last(w, "ts") == expected
    assert last(w, "close") == [x + 0.5 for x in expected]


@pytest.mark.parametrize("n", [1, 3, 20])
def test_push_stores_and_prepends_history(n):
    w = BarWindow("S", 10)
    w.extend(chunk(0, 8))
    cols, offset = w.push(chunk(8, n), 4)
    assert offset == 4
    assert list(cols["ts"]) == list(range(4, 8 + n))
    assert list(cols["close"]) == [t + 0.5 for t in range(4, 8 + n)]
    assert last(w, "ts") == list(range(max(0, 8 + n - 10), 8 + n))


def test_push_from_empty_and_live_bars():
    w = BarWindow("S", 5)
    seen = []
    for t in range(12):
        cols, offset = w.push(chunk(t, 1), 4)
        seen.append(list(cols["ts"]))
        assert offset == min(t, 4)
    assert seen[0] == [0] and seen[2] == [0, 1, 2] and seen[11] == [7, 8, 9, 10, 11]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12), st.lists(st.tuples(st.integers(0, 15), st.integers(0, 14)), max_size=12))
def test_push_of_any_chunk_sizes_returns_history_then_chunk(capacity, steps):
    """One-bar chunks take the scalar path; every size must give the same
    columns: up to ``history`` stored bars (at most capacity - 1), then the chunk."""
    w = BarWindow("S", capacity)
    start = 0
    for n, history in steps:
        history = min(history, capacity - 1)
        cols, offset = w.push(chunk(start, n), history)
        assert offset == min(history, start, capacity)
        assert list(cols["ts"]) == list(range(start - offset, start + n))
        assert list(cols["high"]) == [t + 1.0 for t in range(start - offset, start + n)]
        start += n
    assert last(w, "ts") == list(range(max(0, start - capacity), start))


def test_buffer_never_grows():
    w = BarWindow("S", 100)
    ids = {k: id(v) for k, v in w._ring._cols.items()}
    for i in range(10):
        w.extend(chunk(i * 1000, 1000))
        w.push(chunk(i * 1000 + 1000, 1), 99)
    assert {k: id(v) for k, v in w._ring._cols.items()} == ids
    assert all(len(v) == 200 for v in w._ring._cols.values())


def store_chunks(w: BarWindow, start: int) -> int:
    w.extend(chunk(start, 7))
    return start + 7


def store_live_bar(w: BarWindow, t: int) -> int:
    w.push_bar(Bar("S", t, float(t), t + 1.0, t - 1.0, t + 0.5, 1.0), 63)
    return t + 1


@pytest.mark.parametrize("store", [store_chunks, store_live_bar], ids=["chunks", "live bars"])
def test_reads_are_consistent_under_concurrent_writes(store):
    """A reader on another thread (a snapshot) sees whole bars in order while
    the worker goes on storing, chunks or live bars (a snapshot writes the
    live bars waiting to be written first)."""
    w = BarWindow("S", 64)
    stop = threading.Event()

    def writer() -> None:
        start = 0
        while not stop.is_set():
            start = store(w, start)

    t = threading.Thread(target=writer)
    t.start()
    try:
        for _ in range(2000):
            snap = w._ring.snapshot()
            ts = snap["ts"]
            assert np.all(np.diff(ts) == 1)  # contiguous, in order
            assert np.array_equal(snap["close"], ts + 0.5)
    finally:
        stop.set()
        t.join()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 20),
    st.lists(st.tuples(st.sampled_from(["bars", "chunk", "read"]), st.integers(0, 150)), max_size=10),
)
def test_live_bars_written_behind_read_as_the_bars_stored(capacity, steps):
    """Live bars wait to be written until the columns are read, or until
    ``WRITE_BEHIND`` of them came: whatever comes between them, chunks or
    reads, every read finds the last bars stored, in order, each bar's
    offset is right, and no more than that many wait."""
    w = BarWindow("S", capacity)
    start = 0
    for kind, n in [*steps, ("read", 0)]:
        if kind == "bars":
            for t in range(start, start + n):
                offset = w.push_bar(Bar("S", t, float(t), t + 1.0, t - 1.0, t + 0.5, 1.0), capacity - 1)
                assert offset == min(capacity - 1, t)
                assert len(w._ring._rows) < WRITE_BEHIND  # a symbol nobody reads keeps no more waiting
            start += n
        elif kind == "chunk":
            w.extend(chunk(start, n))
            start += n
        else:
            expected = list(range(max(0, start - capacity), start))
            assert len(w) == len(expected)
            assert last(w, "ts") == expected
            assert last(w, "close") == [x + 0.5 for x in expected]
            count = len(expected)
            ts, _, high, _, _, _ = w._ring.columns(count)
            assert list(ts) == expected and list(high) == [x + 1.0 for x in expected]


def test_a_live_bar_pushed_from_its_bar_gives_the_columns_of_the_chunk_path():
    """The worker hands a live bar's values as numbers (``bar``): the same
    columns, dtypes and offsets as the same bar pushed as a chunk."""
    by_chunk, by_bar = BarWindow("S", 5), BarWindow("S", 5)
    for t in range(12):
        one = chunk(t, 1)
        bar = one.bar(0)
        cols, offset = by_chunk.push(one, 4)
        live_offset = by_bar.push_bar(bar, 4)
        live = by_bar.columns(live_offset + 1)
        assert live_offset == offset
        for name, column in cols.items():
            assert live[name].dtype == column.dtype
            assert list(live[name]) == list(column)
