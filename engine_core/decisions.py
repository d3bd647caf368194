"""What a strategy's decision does: a setup, an entry (checked, sized,
rounded to the venue's lot step, sent), an exit, a cancel, new stops; and
how an order leaves (``_send``: through ``execution.py``; a simulated
broker's fill at a stop's level or at the decision bar's close is asked for
at once). The worker calls ``apply`` at the bar that decided.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from engine_core import matching, recovery, transitions, updates
from engine_core.errors import EngineError, JournalError, OrderLost, RiskError, StrategyError
from engine_core.execution import HELD, SYNCING
from engine_core.model import (
    BUY,
    SELL,
    ErrorEvent,
    Order,
    OrderType,
    Side,
    SignalEvent,
    State,
    TimeInForce,
    to_decimal,
)
from engine_core.orders import InFlight, OrderStatus, OrderUpdate, UpdateKind
from engine_core.stops import stop_price_from
from engine_core.strategy import Decision

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker

# Enum members read once: on Python 3.11 each ``State.X`` costs a metaclass lookup.
_WATCH, _CLOSE_WATCH = State.WATCH, State.CLOSE_WATCH
_SUBMITTED, _UNKNOWN = OrderStatus.SUBMITTED, OrderStatus.UNKNOWN
_INTENT = OrderStatus.INTENT  # an order the broker holds back (execution.HELD), or not sent yet (SYNCING)
_LOST, _REJECTED = OrderStatus.LOST, OrderStatus.REJECTED


class Send(NamedTuple):
    """A worker's message: the intent of its order in flight is on disk (or
    the journal failed): send the order now (``send``)."""

    order: Order


_MARKET, _LIMIT, _GTC = OrderType.MARKET, OrderType.LIMIT, TimeInForce.GTC


def apply(w: SymbolWorker, state: State, d: Decision, k: int) -> None:
    live = w.view.live  # a live bar's values are read from it (``k`` is 0): no array is made
    ts = live.ts if live is not None else w.view.ts.item(w.view.offset + k)  # (``item``: a Python number)
    if w.bus.listening:
        w.bus.emit(SignalEvent(w.symbol, ts, d.action, d.detail()))
    action = d.action
    if state is _WATCH and action in ("setup", "enter"):
        transitions.move(w, _CLOSE_WATCH, ts, d.reason or action)
        w.expiry = w.view.seen + k + d.expires if d.expires else None
        if action == "setup":
            k2, d2 = w._scan(_CLOSE_WATCH, k, k + 1)
            if d2 is not None and k2 is not None:
                apply(w, _CLOSE_WATCH, d2, k2)
            return
    if action == "enter":
        _enter(w, d, k, ts)
    elif action == "exit":
        exit(w, k, d.reason or "exit", None)
    elif action == "cancel":
        w.expiry = None
        if w.orders.current is not None:
            cancel(w, w.orders.current, k)  # back to Watch when the venue confirms
        else:
            transitions.move(w, _WATCH, ts, d.reason or "cancel")
    elif action == "adjust":
        w.stops.override(d.stop_price, d.take_profit_price, d.trailing_stop)
        transitions.journal_stops(w, ts)
        w.view.position.sync(w.ledger, w.stops)
        recovery.persist(w)


def _enter(w: SymbolWorker, d: Decision, k: int, ts: int) -> None:
    working = w.orders.current  # (a local: the attribute changes in ``_send``, and is read again after it)
    if working is not None:
        return  # an entry is already working
    if w.entries_allowed is not None and not w.entries_allowed(w.symbol, ts):
        refusal = RiskError(f"{w.symbol}: no entries now (outside the market's session)", rule="session")
        _not_placed(w, ts, refusal)
        return
    live = w.view.live
    price = live.close if live is not None else w.view.close.item(w.view.offset + k)
    ref = d.limit_price if d.limit_price is not None else price
    sign = 1 if d.side is BUY else -1
    if d.stop_price is not None and (d.stop_price - ref) * sign >= 0:
        word = "below" if sign > 0 else "above"
        raise StrategyError(
            f"{w.symbol}: invalid decision: stop_price {d.stop_price:g} is not {word} the entry price "
            f"{ref:g} of a {d.side.value}"
        )
    if d.take_profit_price is not None and (d.take_profit_price - ref) * sign <= 0:
        word = "above" if sign > 0 else "below"
        raise StrategyError(
            f"{w.symbol}: invalid decision: take_profit_price {d.take_profit_price:g} is not {word} the "
            f"entry price {ref:g} of a {d.side.value}"
        )
    stop = d.stop_price
    stop_loss = w.config_stops[0]
    if stop is None and stop_loss:
        stop = stop_price_from(ref, sign, stop_loss)
    try:
        qty = d.qty or w.risk.size(w.symbol, ref, stop, w.start_cash + float(w.ledger.cash), w.cfg.qty)
    except RiskError as err:
        _not_placed(w, ts, err)
        return
    lot = w.ledger.lot  # the broker's lot step (None: it trades any quantity, and is not asked)
    if lot is not None:
        qty = lot(qty)
    if qty <= 0:
        _not_placed(w, ts, RiskError(f"{w.symbol}: entry quantity rounds to 0 at the venue's lot step"))
        return
    w.expiry = None
    w.entry_levels = (d.stop_price, d.take_profit_price, d.trailing_stop)
    placed = _send(
        w, d.side, qty, ts, d.reason or "enter", k, limit=d.limit_price, stop=stop, target=d.take_profit_price
    )
    if placed and d.limit_price is not None and d.expires and w.orders.current is not None:
        w.order_expiry = w.view.seen + k + d.expires


def _send(
    w: SymbolWorker,
    side: Side,
    qty: Decimal,
    ts: int,
    reason: str,
    k: int,
    price: float | None = None,
    reducing: bool = False,
    limit: float | None = None,
    stop: float | None = None,
    target: float | None = None,
) -> bool:
    """Send an order decided at chunk bar ``k``; ``price`` is the level of
    a stop the bar touched (a simulated broker fills there at once)."""
    view, execution, symbol = w.view, w.execution, w.symbol
    live = view.live
    last = price if price is not None else live.close if live is not None else view.close.item(view.offset + k)
    # (``tuple.__new__``: the NamedTuple's own ``__new__`` is a Python function, a frame per order)
    order = tuple.__new__(
        Order,
        (
            execution.client_id(symbol),
            symbol,
            side,
            qty,
            ts,
            reason,
            _MARKET if limit is None else _LIMIT,
            None if limit is None else to_decimal(limit),
            _GTC,
            None if stop is None else to_decimal(stop),
            None if target is None else to_decimal(target),
        ),
    )
    # live on a venue with the journal, the step does not wait for the intent's fsync: the
    # order is sent at the worker's turn that the journal's writer gives it once it is on disk
    later = partial(w.inbox.put_first, Send(order)) if execution.sends_later else None  # type: ignore[union-attr]
    try:
        state = execution.submit(order, price=last, position=w.ledger.qty, reducing=reducing, later=later)
    except EngineError as err:
        if isinstance(err, OrderLost):  # remembered: a fill may still come if the venue had it after all
            w.orders.remember(InFlight(order, OrderStatus.LOST))
        _not_placed(w, ts, err)
        return False
    flight = w.orders.open(order, _INTENT, view.seen + k)
    if state is SYNCING:
        flight.unsent = True
        recovery.persist(w)
        return True
    _sent(w, flight, state, k)
    if w.sim is not None and w.orders.current is not None and limit is None:
        if price is not None or not w.fill_next_open:
            matching.simulate(w, k, w.sim.fill_market, w.symbol, ts, last)
    return True


def _sent(w: SymbolWorker, flight: InFlight, state: object, k: int) -> None:
    """The order in flight left for the broker (``execution.send``), which
    answered ``state``: None (it took it), ``HELD``, or what it says of an
    order whose send went unanswered."""
    flight.status = _SUBMITTED if state is None else _INTENT if state is HELD else _UNKNOWN
    w.orders_sent += 1
    if w.journal is not None:  # (a backtest's order makes no call for it)
        recovery.persist(w)
    if state is not None and state is not HELD:
        updates.apply_state(w, flight.order, state, k)  # type: ignore[arg-type]


def send(w: SymbolWorker, order: Order) -> None:
    """The worker's turn once ``order``'s intent is on disk (``Send``): it
    leaves now, unless it is no longer the order in flight waiting for that
    (a cancel ended it first: ``cancel``)."""
    flight = w.orders.current
    if flight is None or flight.order is not order or not flight.unsent:
        return
    flight.unsent = False
    try:
        state = w.execution.send_synced(order)
    except EngineError as err:
        w.orders.settle(flight, _LOST if isinstance(err, (OrderLost, JournalError)) else _REJECTED)
        _not_placed(w, order.ts, err)
        return
    except Exception:  # a bug in the broker (journaled unknown): the worker halts; a restart asks the broker
        w.orders.settle(flight, _UNKNOWN)
        raise
    _sent(w, flight, state, w._i)


def sent_first(w: SymbolWorker) -> Send:
    """The ``Send`` of the order in flight still waiting for its intent's
    sync, to take before anything that came for the symbol after it (a bar,
    an update, a command, STOP): once every commit made so far is on disk
    (not waited for when the engine is stopping: it is ``lost``). So a
    symbol's events come in the order a step that waited for the disk made
    them (a replay makes them so), and what came next finds the order sent."""
    assert w.orders.current is not None
    if w.journal is not None and not w.execution.stopped:
        try:
            w.journal.drain()
        except JournalError:
            pass  # the send says it (``execution.send_synced``): never sent
    return Send(w.orders.current.order)


def _not_placed(w: SymbolWorker, ts: int, err: EngineError) -> None:
    w.entry_levels = None
    rule = f" by {err.rule}" if isinstance(err, RiskError) and err.rule else ""
    w.bus.emit(ErrorEvent(w.symbol, ts, f"order not placed: {err}", kind="order"))
    if w.sm.state is State.CLOSE_WATCH and w.ledger.flat():
        transitions.move(w, State.WATCH, ts, f"entry refused{rule}" if rule else "entry not placed")


def exit(w: SymbolWorker, k: int, reason: str, price: float | None) -> None:
    qty = w.ledger.qty
    if qty == 0 or w.orders.current is not None:
        return
    lot = w.ledger.lot
    size = abs(qty) if lot is None else lot(abs(qty))
    if size <= 0:
        return
    live = w.view.live
    ts = live.ts if live is not None else w.view.ts.item(w.view.offset + k)
    _send(w, SELL if qty > 0 else BUY, size, ts, reason, k, price, reducing=True)


def cancel(w: SymbolWorker, flight: InFlight, k: int) -> None:
    if flight.cancel_sent:
        return
    flight.cancel_sent = True
    if flight.unsent:  # not sent yet: it never will be
        why = "cancelled before it was sent"
        v = w.view
        ts = v.ts.item(v.offset + k) if v.offset + k < len(v.ts) else flight.order.ts
        updates.apply(w, OrderUpdate(UpdateKind.CANCEL, flight.order.client_id, w.symbol, ts, reason=why), k)
    elif w.sim is not None:
        matching.simulate(w, k, w.execution.cancel, flight.order)
    else:
        w.execution.cancel(flight.order)


def cancel_entry(w: SymbolWorker, k: int) -> None:
    cur = w.orders.current
    if cur is not None and w.sm.state is State.CLOSE_WATCH:
        cancel(w, cur, k)
