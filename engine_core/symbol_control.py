"""What a control command does to one symbol (``engine_core.control``
routes it; the symbol's worker acts on it between chunks), and a hot reload
of the strategy's file found between chunks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine_core import decisions, transitions
from engine_core.control import ControlError, Request
from engine_core.errors import EngineError, StrategyError
from engine_core.model import ErrorEvent, State

if TYPE_CHECKING:
    from engine_core.worker import SymbolWorker


def act(w: SymbolWorker, request: Request) -> None:
    """Act on a control command and answer it: the result's message, or
    ControlError when refused."""
    name, reply = request.command.name, request.reply
    last = int(w.view.ts[-1]) if w.view.n else w.last_ts
    try:
        done = _do(w, name, last)
    except EngineError as err:
        reply.set_exception(err)
        return
    except Exception as err:  # a bug: answer, then let the loop report it
        reply.set_exception(err)
        raise
    if w.journal is not None:  # what steered the symbol, for engine status and replays
        w.journal.event("control", w.symbol, last or None, command=name, result=done, origin=request.command.origin)
    reply.set_result(done)  # a success is the command's answer (its reply), never an error event


def _do(w: SymbolWorker, name: str, last: int | None) -> str:
    if name == "pause":
        done = "already paused" if w.paused else "paused: the strategy is not asked, stops still act"
        w.paused = True
        return done
    if name == "resume":
        if w.halted is not None:
            raise ControlError(f"halted ({w.halted}); resume only undoes a pause")
        done = "resumed" if w.paused else "was not paused"
        w.paused = False
        return done
    if name == "flatten":
        return _flatten(w, last)
    if name == "reload":
        return w.strategy.reload_if_changed(force=True) or "the strategy file is unchanged"
    raise ControlError(f"{name} is not a symbol command")


def _flatten(w: SymbolWorker, last: int | None) -> str:
    cur = w.orders.current
    if cur is not None and w.sm.state is not State.CLOSE_WATCH:
        raise ControlError(f"exit order {cur.order.client_id} is already working")
    if cur is not None:  # an entry working: cancel it, then flatten what it filled
        decisions.cancel(w, cur, max(w.view.n - 1, 0))
    if w.ledger.flat():
        if w.sm.state is State.CLOSE_WATCH:
            w.expiry = None
            transitions.move(w, State.WATCH, last or 0, "flatten command")
            return "already flat; the setup is cancelled"
        return "already flat"
    if not w.view.n:
        raise ControlError("no bar yet to price an order at")
    decisions.exit(w, w.view.n - 1, "flatten", None)
    cur = w.orders.current
    if cur is None and not w.ledger.flat():
        raise ControlError("the flatten order was not placed (see the error event)")
    return f"flatten order {cur.order.client_id} sent" if cur else "flattened"


def reload_if_changed(w: SymbolWorker, ts: int) -> None:
    """Hot reload between chunks: a success is a log line and a journal
    entry (never an error); a rejected version is an error event."""
    try:
        done = w.strategy.reload_if_changed()
    except StrategyError as err:
        w.bus.emit(ErrorEvent(w.symbol, ts, str(err), kind="reload"))
        return
    if done and w.journal is not None:
        w.journal.event("reload", w.symbol, ts, result=done)
    if done:
        w.view.log(ts, done)
