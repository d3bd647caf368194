"""The PnL series a ledger marks per bar: a live bar (its values read from the
Bar) marks as the same bar in a chunk, at the position as it stands."""

from __future__ import annotations

import tempfile

import numpy as np

from engine_core.ledger import Ledger
from engine_core.model import Bar, BarChunk


def bars(n: int) -> BarChunk:
    close = 100.0 + np.arange(n, dtype=np.float64)
    return BarChunk("S", np.arange(n, dtype=np.int64), close, close + 1, close - 1, close, close * 0 + 1)


def test_live_bars_mark_as_the_chunk_does():
    chunk = bars(5)
    whole, live = Ledger("S"), Ledger("S")
    whole.begin_chunk()
    whole.mark_chunk(chunk)
    for k in range(len(chunk)):
        bar = chunk.bar(k)
        live.begin_chunk()
        live.mark_chunk(bar)
    for a, b in zip(whole.series(), live.series()):
        assert a.dtype == b.dtype and list(a) == list(b)


def test_a_restored_position_is_marked_from_the_next_chunk_on():
    ledger = Ledger("S")
    ledger.begin_chunk()
    assert ledger.mark_chunk(bars(1)) == 0.0
    ledger.restore({"qty": "2", "cash": "-200", "entry": None}, set())
    bar = Bar("S", 1, 101.0, 102.0, 100.0, 101.0, 1.0)
    ledger.begin_chunk()
    assert ledger.mark_chunk(bar) == 2.0
    _, pnl, exposed = ledger.series()
    assert list(pnl) == [0.0, 2.0] and list(exposed) == [False, True]


def test_fills_book_cash_and_round_trips_exactly():
    # cash moves by sign * qty * price + commission, in Decimal; a round trip's
    # pnl is the price move times the size, less both commissions; float(qty) follows
    from decimal import Decimal as D

    from engine_core.model import Fill, Side

    ledger = Ledger("S")
    ledger.book(Fill("a", "S", Side.BUY, D("0.30"), D("100.10"), D("0.03"), 1), "", 0, 1, "enter")
    assert (ledger.qty, str(ledger.cash), ledger.qty_float) == (D("0.30"), "-30.0600", 0.3)
    trip = ledger.book(Fill("b", "S", Side.SELL, D("0.30"), D("99.95"), D("0.02"), 2), "", 1, 2, "exit")
    assert (ledger.qty, str(ledger.cash), ledger.qty_float) == (D("0.00"), "-0.0950", 0.0)
    assert trip is not None and str(trip.pnl) == "-0.0950" and str(trip.commission) == "0.05"
    ledger.book(Fill("c", "S", Side.SELL, D("2"), D("10"), D(0), 3), "", 2, 3, "enter")
    trip = ledger.book(Fill("d", "S", Side.BUY, D("2"), D("9.5"), D(0), 4), "", 3, 4, "exit")
    assert trip is not None and str(trip.pnl) == "1.0" and str(ledger.cash) == "0.9050"
    ledger.restore({"qty": "-1.5", "cash": "3", "entry": None}, set())
    assert ledger.qty_float == -1.5


def test_many_live_bars_between_chunks_keep_their_order():
    """Live bars' marks are staged (ledger._PENDING at most) and
    join the series in order with the chunks' marks around them."""
    chunk = bars(9000)
    whole, mixed = Ledger("S"), Ledger("S")
    whole.begin_chunk()
    whole.mark_chunk(chunk)
    mixed.begin_chunk()
    mixed.mark_chunk(chunk.slice(0, 100))
    for k in range(100, 8900):
        bar = chunk.bar(k)
        mixed.begin_chunk()
        mixed.mark_chunk(bar)
    mixed.begin_chunk()
    mixed.mark_chunk(chunk.slice(8900, 9000))
    for a, b in zip(whole.series(), mixed.series()):
        assert a.dtype == b.dtype and list(a) == list(b)


def test_a_live_ledgers_series_goes_to_disk_and_comes_back_whole(monkeypatch, tmp_path):
    """A session of months: a live symbol's marks go to disk every SPILL_AT
    bars (memory holds fewer), and the series the report reads is the same,
    bar for bar, as one kept in memory; with a position held and fills
    booked between the spills."""
    from decimal import Decimal as D

    from engine_core import spill
    from engine_core.model import Fill, Side

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    chunk = bars(20_000)
    kept, spilled = Ledger("S"), Ledger("S", spill=True)
    for ledger in (kept, spilled):
        ledger.begin_chunk()
        ledger.mark_chunk(chunk.slice(0, 5_000))  # a warm-up-sized chunk, then bar by bar
        for k in range(5_000, 20_000):
            if k == 7_000:
                ledger.book(Fill("a", "S", Side.BUY, D(2), D(100), D(0), k), "a/", 0, k, "enter")
            if k == 15_000:
                ledger.book(Fill("b", "S", Side.SELL, D(2), D(110), D(0), k), "b/", 0, k, "exit")
            ledger.begin_chunk()
            ledger.mark_chunk(chunk.bar(k))
        assert len(ledger._ts) <= (spill.SPILL_AT if ledger is spilled else 20_000)
    assert spilled._spill is not None and spilled._spill.bars >= 16_000
    assert [p.parent.parent for p in spilled._spill.paths] == [tmp_path] * 3
    for a, b in zip(kept.series(), spilled.series()):
        assert a.dtype == b.dtype and len(a) == 20_000 and np.array_equal(a, b)


def test_a_spill_that_cannot_be_written_keeps_the_series_in_memory(monkeypatch, tmp_path, caplog):
    from engine_core import spill

    monkeypatch.setattr(spill, "spill_dir", lambda: tmp_path / "missing")  # every append fails
    chunk = bars(10_000)
    kept, spilled = Ledger("S"), Ledger("S", spill=True)
    for ledger in (kept, spilled):
        for k in range(10_000):
            ledger.begin_chunk()
            ledger.mark_chunk(chunk.bar(k))
    assert spilled._spill is not None and spilled._spill.failed and spilled._spill.bars == 0
    (said,) = [r.getMessage() for r in caplog.records]  # once, not at every bar after
    assert said.startswith(
        f"S: the PnL series stays in memory: it cannot be written to disk: [Errno 2] No such file or directory: "
        f"'{tmp_path / 'missing'}/"
    )
    for a, b in zip(kept.series(), spilled.series()):
        assert np.array_equal(a, b)


def test_the_spill_directory_of_a_killed_process_goes_at_the_next_spill(monkeypatch, tmp_path):
    import os
    import subprocess
    import sys

    from engine_core import spill

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"engine-series-{int(gone.stdout)}-abc"
    alive = tmp_path / f"engine-series-{os.getppid()}-def"  # a process still running
    for folder in (stale, alive):
        folder.mkdir()
        (folder / "0.0").write_bytes(b"\0" * 8)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(spill, "_dir", None)
    mine = spill.spill_dir()
    assert mine.parent == tmp_path and mine.name.startswith(f"engine-series-{os.getpid()}-")
    assert not stale.exists() and alive.exists()
