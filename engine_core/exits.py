"""The exits the engine takes by itself, found over a span of bars at
once: the first bar whose range reaches a stop (``stops.py``), the first bar
at which a kill switch trips (``risk.KillSwitch``, on the symbol's equity at
the closes), and what a tripped switch does (cancel the entry, flatten if
its action says so, halt the symbol).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine_core import decisions, halts
from engine_core.model import State
from engine_core.stops import StopHit

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker

_IN_TRADE = State.IN_TRADE
# Where the engine exits by itself first in a span: (chunk bar, the stop the bar
# reached or None, the kill switch's rule or None). A plain tuple: made on a hit only.
Due = tuple[int, StopHit | None, str | None]


def first(w: SymbolWorker, i: int, end: int) -> Due | None:
    """The first of chunk bars ``i`` .. ``end - 1`` at which the engine exits
    by itself: a stop the bar reaches (in a trade with no order working), or
    a kill switch that trips (before the stop's bar; on it, the stop goes)."""
    hit = None
    if w.sm.state is _IN_TRADE and w.orders.current is None and w.stops.active:
        hit = first_stop(w, i, end)
    if w.kill.enabled:
        kill = first_kill(w, i, end if hit is None else hit.bar + 1)
        if kill is not None and (hit is None or kill[0] < hit.bar):
            return kill[0], None, kill[1]
    return None if hit is None else (hit.bar, hit, None)


def take(w: SymbolWorker, i: int, due: Due) -> int:
    """Exit at ``due``'s bar (``first``), the bars from ``i`` to it stepped:
    at the stop's level, or as the kill switch says. The next bar to step."""
    k, hit, rule = due
    consume_kill(w, i, k + 1)
    if hit is not None:
        decisions.exit(w, k, hit.reason, hit.price)
    elif rule is not None:
        kill_switch(w, k, rule)
    return k + 1


def first_stop(w: SymbolWorker, i: int, n: int) -> StopHit | None:
    v, o = w.view, w.view.offset
    hit = w.stops.first_hit(v.open[o + i : o + n], v.high[o + i : o + n], v.low[o + i : o + n], w.ledger.qty > 0)
    return None if hit is None else StopHit(i + hit.bar, hit.price, hit.reason)


def _equity(w: SymbolWorker, start: int, stop: int) -> np.ndarray:
    """The symbol's equity (start cash + its PnL) at the closes of chunk bars [start, stop)."""
    o = w.view.offset
    close = w.view.close[o + start : o + stop]
    return w.start_cash + float(w.ledger.cash) + float(w.ledger.qty) * close


def first_kill(w: SymbolWorker, start: int, stop: int) -> tuple[int, str] | None:
    if stop <= start:
        return None
    o = w.view.offset
    hit = w.kill.first(w.view.ts[o + start : o + stop], _equity(w, start, stop))
    return None if hit is None else (start + hit[0], hit[1])


def consume_kill(w: SymbolWorker, start: int, stop: int) -> None:
    if w.kill.enabled and stop > start:
        o = w.view.offset
        w.kill.consume(w.view.ts[o + start : o + stop], _equity(w, start, stop))


def kill_switch(w: SymbolWorker, k: int, rule: str) -> None:
    ts = int(w.view.ts[w.view.offset + k])
    decisions.cancel_entry(w, k)
    if w.kill.action == "flatten" and w.ledger.qty != 0:
        decisions.exit(w, k, rule, None)
    halts.halt(w, f"{w.symbol}: kill switch {rule} tripped; trading stopped ({w.kill.action})", ts, flatten=False)
