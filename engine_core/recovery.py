"""What a symbol's journal holds and how a restart takes up from it.

``snapshot`` is a worker's state as the journal keeps it (written with each
order, fill and transition, and a bar's progress shortly after the bar);
``restore`` puts it back on a new worker with the orders still unsettled,
and ``reconcile`` asks the broker about each of them, books what the journal
missed and halts the symbol when its position still disagrees.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine_core import halts, updates
from engine_core.journal import order_from_row
from engine_core.model import State
from engine_core.orders import InFlight, OrderStatus
from engine_core.statemachine import StateMachine

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker


def snapshot(w: SymbolWorker) -> dict[str, Any]:
    """The symbol's state as the journal keeps it."""
    cur = w.orders.current
    return {
        "state": w.sm.state.value,
        **w.ledger.snapshot(),
        "pending": None if cur is None else cur.order.client_id,
        "pending_filled": "0" if cur is None else str(cur.filled),
        **w.stops.snapshot(),
        "entry_levels": w.entry_levels,
        "bracket": w.bracket,
        "expiry": w.expiry,
        "order_expiry": w.order_expiry,
        "halted": w.halted,
        "last_ts": w.last_ts,
        "bars": w.bars_done,
        "kill": w.kill.snapshot(),
        "strategy_state": w.strategy.state() if w.started else w.restored_state,
    }


def restore(w: SymbolWorker, snap: dict[str, Any] | None, unsettled: list[dict[str, Any]], fill_keys: set[str]) -> None:
    """Take up where a previous run of this engine left off: ``snap`` is
    the symbol's last snapshot, ``unsettled`` the journal's rows of orders
    still open or whose fills do not add up (``Journal.unsettled_orders``)."""
    if snap is not None:
        w.sm = StateMachine(w.symbol, State(snap["state"]))
        w.ledger.restore(snap, fill_keys)
        w.stops.restore(snap)
        levels = snap.get("entry_levels")
        w.entry_levels = None if levels is None else tuple(levels)  # type: ignore[assignment]
        w.bracket = snap.get("bracket")
        w.expiry, w.order_expiry = snap["expiry"], snap.get("order_expiry")
        w.halted, w.last_ts = snap["halted"], snap["last_ts"]
        w.view.seen = w.bars_done = snap["bars"]
        w.kill.restore(snap.get("kill", {}))
        w.restored_state = snap.get("strategy_state")
    else:
        w.ledger.fill_keys = set(fill_keys)
    pending = None if snap is None else snap.get("pending")
    open_rows = [r for r in unsettled if OrderStatus(r["status"]).is_open]
    current = next((r for r in open_rows if r["client_id"] == pending), None)
    if current is None and open_rows:
        current = open_rows[-1]  # journaled as sent, snapshot not yet written
    for row in unsettled:
        order = order_from_row(row)
        status, filled = OrderStatus(row["status"]), Decimal(row["filled_qty"])
        if row is current:
            w.orders.open(order, status, filled=filled)
        else:
            w.orders.remember(InFlight(order, status, filled, row.get("venue_id") or ""))
    w.sync_position_view()


def reconcile(w: SymbolWorker, held: Decimal) -> None:
    """After ``restore``: ask the broker about every unsettled order, book
    the fills the journal missed, mark orders it never got as lost (never
    resent), then halt the symbol if its position still disagrees."""
    flights = list(w.orders.recent.values())
    if w.orders.current is not None:
        flights.append(w.orders.current)
    for flight in flights:
        order = flight.order
        state = w.execution.lookup(order.client_id)
        if state is None:
            if flight.status.is_open:
                updates.order_lost(w, order, "not at the broker after a restart; not resent")
            continue
        updates.apply_state(w, order, state)
    _reconcile_bracket(w, flights)
    # killed between booking a fill and the transition it causes
    updates.settle_state(w, w.last_ts or 0, "restart: the state follows the booked position")
    if held != w.ledger.qty:
        halts.halt(
            w,
            f"{w.symbol}: position mismatch after restart: the journal says {w.ledger.qty}, "
            f"the broker {held}; resolve it at the broker, then restart",
            w.last_ts,
        )


def _reconcile_bracket(w: SymbolWorker, flights: list[InFlight]) -> None:
    """The entry whose legs protect the position at the venue: asked for
    (which registers its legs with the broker), and what a leg filled
    while the engine was down is booked: the position it closed is not
    exited again."""
    cid = w.bracket
    if cid is None or w.journal is None or any(f.order.client_id == cid for f in flights):
        return
    row = next((r for r in w.journal.orders(symbol=w.symbol) if r["client_id"] == cid), None)
    state = w.execution.lookup(cid) if row is not None else None
    if row is not None and state is not None:
        updates.apply_leg_fills(w, order_from_row(row), state)
