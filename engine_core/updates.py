"""What a broker's update does to a symbol: to its order in flight
(``orders.py`` keeps the lifecycle), to its position when it brings a fill
(``ledger.py``, journaled with the snapshot it leaves in one synced commit),
and, when the order is done, to its state and stops.

Every broker's updates come here the same way: a venue's through the
worker's inbox, a simulated broker's at once from inside the worker's call
(``SymbolWorker.deliver``), a restart's as the updates an order's state at
the broker stands for (``apply_state``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine_core import halts, recovery, transitions
from engine_core.model import ErrorEvent, Fill, FillEvent, Order, State
from engine_core.orders import InFlight, OrderState, OrderStatus, OrderUpdate, UpdateKind

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker

_TERMINAL_UPDATE = {
    OrderStatus.CANCELLED: UpdateKind.CANCEL,
    OrderStatus.REJECTED: UpdateKind.REJECT,
    OrderStatus.EXPIRED: UpdateKind.EXPIRE,
}
# Enum members read once: on Python 3.11 each ``State.X`` costs a metaclass lookup.
_WATCH, _CLOSE_WATCH, _IN_TRADE = State.WATCH, State.CLOSE_WATCH, State.IN_TRADE
_FILLED = OrderStatus.FILLED


class Router:
    """A broker's ``on_update``: each update to its symbol's worker
    (``deliver``); an update for a symbol this engine does not run is not
    its own. Compiled, as the paper book that calls it on every backtest
    fill: no Python frame between the book and the worker."""

    def __init__(self, workers: dict[str, SymbolWorker]) -> None:
        self.workers = workers  # the engine's, filled as it builds them

    def __call__(self, update: OrderUpdate) -> None:
        worker = self.workers.get(update.symbol)
        if worker is not None:
            worker.deliver(update)


def apply(w: SymbolWorker, update: OrderUpdate, i: int) -> None:
    """Apply a broker update (at chunk bar ``i``): its status, its fill,
    and what the order's end means for the state machine."""
    fill = update.fill
    key = ""
    if fill is not None and w.ledger.keeps_fill_keys:
        key = fill.key
        if key in w.ledger.fill_keys:
            return  # a fill seen before (a resent update, or reported again after a restart)
    if update.leg and fill is not None:  # a bracket leg the venue held: it closes the position
        _book(w, fill, key, i, None, None, reason=update.leg)
        settle_state(w, fill.ts, update.leg)
        return
    flight, status, done, opened = w.orders.apply(update)
    if fill is not None:
        _book(w, fill, key, i, flight, status, ends=done and flight is not None)
    elif status is not None and flight is not None:
        w.execution.record(flight.order, status, update.reason, update.venue_id)
    if done and flight is not None:
        w.execution.order_closed(w.symbol)
        _order_finished(w, flight, update.ts, update.reason)
    elif opened < 0:  # an order the symbol only remembers (after a restart) left the book
        w.execution.order_left()
    elif opened > 0:  # one given up as lost was working after all (a late fill)
        w.execution.order_opened()
    elif fill is not None and (flight is None or flight is not w.orders.current):
        # a late fill of an order given up (lost), or of one not known here
        settle_state(w, fill.ts, "fill of a finished order" if flight is not None else "fill of an unknown order")


def _book(
    w: SymbolWorker,
    fill: Fill,
    key: str,
    i: int,
    flight: InFlight | None,
    status: OrderStatus | None,
    reason: str = "",
    ends: bool = False,
) -> None:
    """Book a fill into the ledger, journaled with its order's status and
    the new position in one transaction; events go out once it is committed.
    ``ends``: the fill ends the order in flight, whose end syncs the
    strategy's position view (unless ``on_fill`` reads it first)."""
    if flight is None and not reason:
        w.bus.emit(ErrorEvent(w.symbol, fill.ts, f"fill for unknown order {fill.client_id}: booked", kind="fill"))
    reason = reason or (flight.order.reason if flight is not None else "exit")
    index = w.view.seen + i + 1
    record = None
    journal = w.journal
    if journal is not None or w.bus.listening:  # (outbox.wanted inline) the fill, and what it leaves of its order
        filled = flight.filled if flight is not None else fill.qty
        record = FillEvent(fill, filled, status or (flight.status if flight is not None else _FILLED))
    if record is None or journal is None:
        w.ledger.book(fill, key, i, index, reason)
    else:
        with journal.transaction(
            waits=False, symbol=w.symbol
        ):  # synced; what is sent next waits for the disk (its intent)
            journal.record(record)
            w.ledger.book(fill, key, i, index, reason)
            recovery.persist(w)
    if record is not None and w.bus.listening:  # once it is committed
        w.bus.emit(record)
    if w.risk.tracks_account:
        last = float(w.view.close[w.view.offset + i]) if w.view.n else float(fill.price)
        qty = float(w.ledger.qty)
        w.risk.account.update(w.symbol, float(w.ledger.cash) + qty * last, abs(qty) * last)
    if w.strategy.has_on_fill:
        w.view.position.sync(w.ledger, w.stops)
        w._guard(w.strategy.on_fill, fill.ts, fill)
    elif not ends:
        w.view.position.sync(w.ledger, w.stops)


def _order_finished(w: SymbolWorker, flight: InFlight, ts: int, why: str) -> None:
    """The order in flight is done (filled, cancelled, rejected, expired, lost)."""
    w.order_expiry = None
    status = flight.status
    state, qty = w.sm.state, w.ledger.qty
    moved = True  # the move journals the snapshot, with everything above changed before it
    if state is _CLOSE_WATCH and not w.ledger.flat():
        order = flight.order
        if w.broker.supports_brackets and (order.stop_price is not None or order.take_profit_price is not None):
            w.bracket = order.client_id
        _arm_stops(w, ts)  # before the transition, whose event carries the levels
        transitions.move(
            w,
            _IN_TRADE,
            ts,
            "entry filled" if status is _FILLED else f"entry {status.value} after a partial fill",
        )
    elif state is _CLOSE_WATCH:
        w.entry_levels = None
        detail = f": {why}" if why else ""
        transitions.move(w, _WATCH, ts, f"order {flight.order.client_id} {status.value}{detail}")
    elif state is _IN_TRADE and w.ledger.flat():
        w.stops.clear()
        transitions.move(w, _WATCH, ts, flight.order.reason)
    elif state is _IN_TRADE and status is not _FILLED:
        moved = False
        w.bus.emit(
            ErrorEvent(
                w.symbol,
                ts,
                f"exit order {flight.order.client_id} {status.value} ({why}); position {qty} still open",
                kind="order",
            )
        )
    else:
        moved = False
        settle_state(w, ts, f"order {flight.order.client_id} {status.value}")
    w.view.position.sync(w.ledger, w.stops)
    if not moved and w.journal is not None:  # (a backtest's fill makes no call for it)
        recovery.persist(w)
    if w.halted is not None:
        halts.flatten_if_halted(w)


def settle_state(w: SymbolWorker, ts: int, reason: str) -> None:
    """With no order in flight, bring the state machine in line with the
    position a fill left (a late fill of an order given up)."""
    if w.orders.current is not None:
        return
    state = w.sm.state
    if not w.ledger.flat() and state is not State.IN_TRADE:
        if state is State.WATCH:
            transitions.move(w, State.CLOSE_WATCH, ts, reason)
        _arm_stops(w, ts)
        transitions.move(w, State.IN_TRADE, ts, reason)
    elif w.ledger.flat() and state is State.IN_TRADE:
        w.stops.clear()
        transitions.move(w, State.WATCH, ts, reason)


def _arm_stops(w: SymbolWorker, ts: int) -> None:
    """A trade has begun: the config's stops from the entry price, or the
    levels the entry decision named, journaled."""
    entry = w.ledger.entry
    price = float(entry.price) if entry else 0.0
    w.stops.on_entry(price, w.ledger.qty > 0, *w.config_stops)
    if w.entry_levels is not None:
        w.stops.override(*w.entry_levels)
    w.entry_levels = None
    if w.journal is not None:
        transitions.journal_stops(w, entry.ts if entry else ts)


def apply_state(w: SymbolWorker, order: Order, state: OrderState, i: int = 0) -> None:
    """Apply what the broker says of an order (after an unanswered send or
    a restart) as the updates it stands for: fills first, then its end."""
    cid, sym = order.client_id, order.symbol
    if state.venue_id or state.status is OrderStatus.ACCEPTED:
        apply(w, OrderUpdate(UpdateKind.ACK, cid, sym, order.ts, venue_id=state.venue_id), i)
    for fill in state.fills:
        apply(w, OrderUpdate(UpdateKind.PARTIAL_FILL, cid, sym, fill.ts, fill), i)
    kind = _TERMINAL_UPDATE.get(state.status)
    if kind is not None:
        apply(w, OrderUpdate(kind, cid, sym, order.ts, reason="reported by the broker"), i)
    apply_leg_fills(w, order, state, i)


def apply_leg_fills(w: SymbolWorker, order: Order, state: OrderState, i: int = 0) -> None:
    """Book what the order's bracket legs filled (each fill once)."""
    for leg, fill in state.leg_fills:
        apply(w, OrderUpdate(UpdateKind.FILL, order.client_id, order.symbol, fill.ts, fill, leg=leg), i)


def order_lost(w: SymbolWorker, order: Order, why: str) -> None:
    """The broker has no such order: it never arrived (never resent)."""
    w.execution.lost(order, why)
    flight = w.orders.find(order.client_id)
    if flight is None or not flight.status.is_open:
        return
    current = flight is w.orders.current
    w.orders.settle(flight, OrderStatus.LOST)
    if current:
        w.execution.order_closed(w.symbol)
        _order_finished(w, flight, order.ts, why)
    else:  # one the symbol only remembers (after a restart)
        w.execution.order_left()
