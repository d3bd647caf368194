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
        live.mark_chunk(BarChunk.from_bar(bar), bar)
    for a, b in zip(whole.series(), live.series()):
        assert a.dtype == b.dtype and list(a) == list(b)


def test_a_restored_position_is_marked_from_the_next_chunk_on():
    ledger = Ledger("S")
    ledger.begin_chunk()
    assert ledger.mark_chunk(bars(1)) == 0.0
    ledger.restore({"qty": "2", "cash": "-200", "entry": None}, set())
    bar = Bar("S", 1, 101.0, 102.0, 100.0, 101.0, 1.0)
    ledger.begin_chunk()
    assert ledger.mark_chunk(BarChunk.from_bar(bar), bar) == 2.0
    _, pnl, exposed = ledger.series()
    assert list(pnl) == [0.0, 2.0] and list(exposed) == [False, True]
