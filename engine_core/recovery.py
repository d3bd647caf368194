"""What a symbol's journal holds and how a restart takes up from it.

``snapshot`` is a worker's state as the journal keeps it (written with each
order, fill and transition, and a bar's progress shortly after the bar);
``restore`` puts it back on a new worker with the orders still unsettled,
and ``reconcile`` asks the broker about each of them, books what the journal
missed, takes up the engine's own orders working at the venue that the
journal does not have open, warns of the orders others placed there, and
halts the symbol when its position still disagrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine_core import halts, outbox, updates
from engine_core.journal import order_from_row
from engine_core.model import ErrorEvent, State
from engine_core.orders import InFlight, OpenOrder, OrderStatus, client_id_head
from engine_core.statemachine import StateMachine

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker


def snapshot(w: SymbolWorker) -> dict[str, Any]:
    """The symbol's state as the journal keeps it."""
    cur = w.orders.current
    return {
        "state": w.sm.state._value_,
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


def persist(w: SymbolWorker, soon: bool = False) -> None:
    """Journal ``w``'s snapshot. In one of ``w``'s steps (processing a
    message from its inbox, holding ``w.lock``) it is taken once, when what
    the step wrote is handed over (``Journal.mark``); otherwise now (in the
    current transaction, if any), or with ``soon`` (only a bar's progress)
    committed with the other symbols' shortly."""
    journal = w.journal
    if journal is None or journal.mark(w.symbol):
        return
    journal.save_symbol(w.symbol, snapshot(w), soon=soon)


def restore(w: SymbolWorker, snap: dict[str, Any] | None, unsettled: list[dict[str, Any]], fill_keys: set[str]) -> None:
    """Take up where a previous run of this engine left off: ``snap`` is
    the symbol's last snapshot, ``unsettled`` the journal's rows of orders
    still open or whose fills do not add up (``Journal.unsettled``)."""
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
            w.execution.order_restored(order, filled, w.ledger.qty)  # counted, its notional taken again
        else:
            w.orders.remember(InFlight(order, status, filled, row.get("venue_id") or ""))
            if status.is_open:
                w.execution.order_opened()  # one of the account's open orders again (max_open_orders)
    w.view.position.sync(w.ledger, w.stops)


def reconcile(w: SymbolWorker, held: Decimal, working: Sequence[OpenOrder] = ()) -> None:
    """After ``restore``: ask the broker about every unsettled order, book
    the fills the journal missed, mark orders it never got as lost (never
    resent), take up what the venue has working for the symbol
    (``working``, from ``Broker.open_orders``) that the journal does not
    have open, then halt the symbol if its position still disagrees."""
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
    _reconcile_working(w, working)
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
    if cid is None or any(f.order.client_id == cid for f in flights):
        return
    row = _journal_row(w, cid)
    state = w.execution.lookup(cid) if row is not None else None
    if row is not None and state is not None:
        updates.apply_leg_fills(w, order_from_row(row), state)


def _journal_row(w: SymbolWorker, client_id: str) -> dict[str, Any] | None:
    """The journal's row of one of the symbol's orders (None: not journaled)."""
    if w.journal is None:
        return None
    return next((r for r in w.journal.orders(symbol=w.symbol) if r["client_id"] == client_id), None)


def _reconcile_working(w: SymbolWorker, working: Sequence[OpenOrder]) -> None:
    """The orders working at the venue that the journal does not have open.

    One with this engine's client id for the symbol is the engine's (its
    intent was journaled, then given up as lost when the venue did not know
    it yet, or the journal itself was lost): adopted. Any other was placed
    by hand, by another program or by another engine on the account: left
    alone, never cancelled, and named once in a warning (journaled). A leg
    the venue attached to one of the engine's entries goes with its entry
    (``_reconcile_bracket``)."""
    head = client_id_head(w.execution.prefix, w.symbol)
    foreign = []
    for found in working:
        cid = found.order.client_id
        flight = w.orders.find(cid)
        if flight is not None and flight.status.is_open:
            continue  # the journal's, asked for above
        if _ours(head, cid):
            _adopt(w, found)
        elif not _ours(head, found.parent):
            foreign.append(found)
    if foreign:
        outbox.write(w.journal, w.bus, ErrorEvent(w.symbol, w.last_ts, _foreign_warning(foreign), kind="warning"))


def _ours(head: str, client_id: str) -> bool:
    """Whether ``client_id`` is one this engine made for the symbol (``client_id_head`` and a sequence)."""
    return client_id.startswith(head) and client_id[len(head) :].isdigit()


def _adopt(w: SymbolWorker, found: OpenOrder) -> None:
    """Take up an order of this engine working at the venue: journaled as
    accepted, the symbol's order in flight (or, when it has one already,
    remembered: its fills are booked as they come), its fills so far booked.
    Looking it up registers it with the broker, which reports what it does
    from now on; the symbol's next client id follows it."""
    cid = found.order.client_id
    state = w.execution.lookup(cid)
    if state is None:  # listed open, then not found: said, never touched
        why = f"order {cid} is working at the broker but its lookup found nothing: not adopted (a restart asks again)"
        w.bus.emit(ErrorEvent(w.symbol, w.last_ts, why, kind="order"))
        return
    row = _journal_row(w, cid)
    order = found.order if row is None else order_from_row(row)
    filled = Decimal(0) if row is None else Decimal(row["filled_qty"])
    w.execution.taken(w.symbol, cid)
    venue_id = state.venue_id or found.venue_id
    w.execution.record(order, OrderStatus.ACCEPTED, "working at the broker after a restart: adopted", venue_id)
    if w.orders.current is None:
        w.orders.open(order, OrderStatus.ACCEPTED, w.bars_done, filled)
        w.execution.order_restored(order, filled, w.ledger.qty)
    else:
        w.orders.remember(InFlight(order, OrderStatus.ACCEPTED, filled, venue_id, w.bars_done))
        w.execution.order_opened()
    updates.apply_state(w, order, state)
    persist(w)


def _foreign_warning(orders: Sequence[OpenOrder]) -> str:
    """The one line that names the orders others placed on the symbol."""
    listed = []
    for found in orders:
        o = found.order
        terms = f"{o.side.value} {o.qty} {o.type.value}"
        if o.price is not None:
            terms += f" @ {o.price}"
        if o.stop_price is not None:
            terms += f" stop {o.stop_price}"
        if found.filled_qty:
            terms += f", {found.filled_qty} filled"
        listed.append(f"{found.venue_id or '-'} ({o.client_id}) {terms}")
    many = "s" if len(orders) > 1 else ""
    return (
        f"{len(orders)} open order{many} at the broker not placed by this engine, left alone (never cancelled; "
        f"what they fill is not booked here and moves the position the broker reports): " + "; ".join(listed)
    )
