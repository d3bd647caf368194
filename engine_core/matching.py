"""A symbol's order in flight at each bar: a simulated broker matches it
against the bar (``fill = "next_open"``: a market order at its open; a
limit where the range reaches it), and an entry limit past its ``expires``
is cancelled. A simulated broker is called through ``simulate``: what it
reports through ``on_update`` meanwhile is applied at once, at that bar
(``SymbolWorker.deliver``), so a backtest stays deterministic."""

from __future__ import annotations

from collections.abc import Callable
from threading import get_ident
from typing import TYPE_CHECKING, Any

from engine_core import decisions
from engine_core.model import OrderType

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker

_LIMIT = OrderType.LIMIT


def work_order(w: SymbolWorker, i: int) -> None:
    """Match a simulated order against chunk bar ``i``; cancel an entry limit past its expiry."""
    cur = w.orders.current
    assert cur is not None
    v = w.view
    live = v.live  # a live bar's values are read from it: no array is made
    j = v.offset + i
    ts = live.ts if live is not None else v.ts.item(j)  # (``item``: a Python number, no numpy scalar)
    sim = w.sim
    if sim is not None and cur.order.ts < ts and (w.fill_next_open or cur.order.type is _LIMIT):
        if live is not None:
            simulate(w, i, sim.match, w.symbol, ts, live.open, live.high, live.low)
        else:
            simulate(w, i, sim.match, w.symbol, ts, v.open.item(j), v.high.item(j), v.low.item(j))
    if w.orders.current is not None and w.order_expiry is not None and v.seen + i >= w.order_expiry:
        w.order_expiry = None
        decisions.cancel(w, w.orders.current, i)


def simulate(w: SymbolWorker, k: int, call: Callable[..., None], *args: Any) -> None:
    """Call the simulated broker at chunk bar ``k``: what it reports
    through ``on_update`` meanwhile is applied at once, at that bar."""
    before = w.simulating
    w.simulating = (get_ident(), k)
    try:
        call(*args)
    finally:
        w.simulating = before
