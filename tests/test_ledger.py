"""The PnL series a ledger marks per bar: a live bar (its values read from the
Bar) marks as the same bar in a chunk, at the position as it stands."""

from __future__ import annotations

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
