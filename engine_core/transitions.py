"""A symbol's move to a new state, and the stops it arms: what the state
machine does, written once (``outbox``: one record the journal keeps and
the bus publishes) with the snapshot the move leaves. Not synced on its
own: a restart settles the state from the booked position."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine_core import recovery
from engine_core.model import State, TransitionEvent

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker

_WATCH, _IN_TRADE = State.WATCH, State.IN_TRADE


def move(w: SymbolWorker, to: State, ts: int, reason: str) -> None:
    """Move ``w``'s state machine to ``to`` at bar time ``ts``, for ``reason``."""
    if to is _WATCH:
        w.bracket = None
    frm = w.sm.move(to, reason)
    journal, bus = w.journal, w.bus
    if journal is None and not bus.listening:
        return
    # the move into in_trade carries the levels the engine armed
    armed = w.stops.snapshot() if to is _IN_TRADE and w.stops.active else None
    record = TransitionEvent(w.symbol, ts, frm, to, reason, armed)
    if journal is None:
        bus.emit(record)
        return
    with journal.transaction(synced=False, symbol=w.symbol):
        journal.record(record)
        recovery.persist(w)
    if bus.listening:
        bus.emit(record)


def journal_stops(w: SymbolWorker, ts: int | None) -> None:
    """Journal the stops armed now (the bus hears them with the transition)."""
    if w.journal is not None and w.stops.active:
        w.journal.event("stops", w.symbol, ts, **w.stops.snapshot())
