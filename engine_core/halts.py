"""A symbol that stops trading: a strategy error, a kill switch, a bug
while handling a message, a position a restart cannot reconcile. The halt
is written once (journaled, synced, and published) and, when the config
says ``on_error = "flatten"``, the position is exited. Only this symbol
stops; the engine goes on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine_core import decisions, recovery
from engine_core.brokers import Broker
from engine_core.control import Request
from engine_core.errors import JournalError
from engine_core.model import Bar, BarChunk, ErrorEvent, Order, iso_utc
from engine_core.orders import OrderUpdate

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker


def halt(w: SymbolWorker, message: str, ts: int | None, flatten: bool = True) -> None:
    """Stop ``w``'s strategy; cancel a working entry; flatten if the config says so."""
    w.errors.append(message)
    if w.halted is not None:
        return
    w.halted = message
    record = ErrorEvent(w.symbol, ts, message, kind="halted")
    if w.journal is not None:
        try:
            with w.journal.transaction(symbol=w.symbol):
                w.journal.record(record)
                recovery.persist(w)
        except JournalError:  # the journal itself failed: the run stops with its error (runner.py)
            pass
    w.bus.emit(record)
    if not w.view.n:
        return
    decisions.cancel_entry(w, w._i)
    if flatten:
        flatten_if_halted(w)


def flatten_if_halted(w: SymbolWorker) -> None:
    """A halted symbol whose config says ``on_error = "flatten"`` exits
    what it holds (at once, or when the order in flight is done)."""
    if w.halted is not None and w.cfg.on_error == "flatten" and w.ledger.qty != 0 and w.view.n:
        decisions.exit(w, w._i, "halt", None)


def internal_error(w: SymbolWorker, msg: Any, err: BaseException, text: str) -> str:
    """The halt line for a bug met while handling ``msg``: what the worker
    was doing, the broker call it came through, and the error's ``text``."""
    return f"internal error {_doing(w, msg)}{_raised_in(err, w.broker)}: {text}"


def _doing(w: SymbolWorker, msg: Any) -> str:
    """What the worker was doing with ``msg``."""
    if type(msg) is OrderUpdate:
        return f"applying the broker's {msg.kind.value} of order {msg.client_id}"
    if type(msg) is Request:
        return f"on control command {msg.command.name}"
    if type(msg) is decisions.Send:
        return f"sending order {msg.order.client_id}"
    if type(msg) not in (BarChunk, Bar):
        return "warming up"  # the only other message: a Warmup
    view = w.view
    if view.n and view.offset + w._i < len(view.ts):
        return f"at the bar of {iso_utc(int(view.ts[view.offset + w._i]))}"
    return "at a bar"


def _raised_in(err: BaseException, broker: Broker) -> str:
    """``", in broker.submit of order X (buy 1)"``: the outermost broker call
    the exception came through, and the order it was about, if any."""
    call, order = "", None
    tb = err.__traceback__
    while tb is not None and not call:
        local = tb.tb_frame.f_locals
        if isinstance(local.get("order"), Order):
            order = local["order"]
        if local.get("self") is broker:
            call = f"broker.{tb.tb_frame.f_code.co_name}"
        tb = tb.tb_next
    if not call:
        return ""
    about = f" of order {order.client_id} ({order.side.value} {order.qty})" if order is not None else ""
    return f", in {call}{about}"
