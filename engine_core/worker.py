"""One symbol's worker: bars in, decisions, orders and fills out.

The worker owns the symbol's storage window, strategy instance, state
machine and position. It takes bars in chunks (one bar live, many in a
backtest) and walks them bar by bar in this order:

1. a pending order of a simulated broker fills at this bar's open
   (``fill = "next_open"``);
2. in a trade, the engine's stop-loss, take-profit and trailing stop are
   checked against the bar's range (vectorised over the chunk: the strategy
   is only asked about the bars before the first hit);
3. the strategy's function for the current state decides on the bar's close
   (the host scans bars until one returns a decision).

A strategy error halts only this symbol (``on_error`` keeps or flattens the
position). Every transition, order and fill is an event.
"""

from __future__ import annotations

import queue
import threading
import traceback
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.brokers import Broker
from engine_core.config import StrategySection
from engine_core.errors import EngineError, StrategyError
from engine_core.events import EventBus
from engine_core.execution import ExecutionEngine
from engine_core.model import (
    Bar,
    BarChunk,
    ErrorEvent,
    Fill,
    FillEvent,
    Order,
    RoundTrip,
    Side,
    SignalEvent,
    State,
)
from engine_core.results import SymbolResult
from engine_core.statemachine import StateMachine
from engine_core.storage import BarWindow
from engine_core.strategy import Decision, StrategyHost, SymbolView

STOP = object()  # put in a worker's inbox to end it after what is queued


@dataclass
class _Entry:
    ts: int
    price: Decimal
    qty: Decimal
    commission: Decimal
    side: Side
    index: int  # the symbol's bar count (1-based) at the entry fill


class SymbolWorker:
    def __init__(
        self,
        symbol: str,
        host: StrategyHost,
        strategy: StrategySection,
        execution: ExecutionEngine,
        broker: Broker,
        bus: EventBus,
        window: int,
        inbox_size: int = 0,
    ) -> None:
        self.symbol = symbol
        self.cfg = strategy
        self.execution = execution
        self.broker = broker
        self.bus = bus
        self.window = window
        self.store = BarWindow(symbol, window)
        self.view = SymbolView(symbol, strategy.params, window)
        self.strategy = host.bind(symbol, self.view)
        self.sm = StateMachine(symbol)
        self.inbox: queue.Queue[Any] = queue.Queue(inbox_size)
        self.thread: threading.Thread | None = None

        self.qty = Decimal(0)
        self.cash = Decimal(0)  # cash flow of fills, net of commission
        self.entry: _Entry | None = None
        self.pending: Order | None = None
        self.pending_filled = Decimal(0)
        self.pending_decision: Decision | None = None
        self.stop_loss: float | None = None
        self.take_profit: float | None = None
        self.trailing: float | None = None
        self.best = 0.0  # best price since entry, for the trailing stop
        self.expiry: int | None = None  # absolute bar index at which a setup lapses
        self.halted: str | None = None
        self.started = False

        self.trades: list[RoundTrip] = []
        self.errors: list[str] = []
        self.orders = 0
        self.fills = 0
        self._ts: list[np.ndarray] = []
        self._pnl: list[np.ndarray] = []
        self._exposed: list[np.ndarray] = []
        self._marks: list[tuple[int, float, float]] = []
        self._i = 0  # chunk-relative index of the bar being processed

    # ------------------------------------------------------------ threading

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=f"worker-{self.symbol}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            msg = self.inbox.get()
            if msg is STOP:
                return
            try:
                if isinstance(msg, BarChunk):
                    self.process(msg)
                elif isinstance(msg, Bar):
                    self.process(BarChunk.from_bars([msg]))
                elif isinstance(msg, Fill):
                    self.apply_fill(msg, 0)
            except EngineError as err:
                self.halt(str(err), None)
            except Exception as err:  # a bug: keep the engine alive, say so loudly
                tb = traceback.format_exc(limit=5)
                self.halt(f"internal error: {type(err).__name__}: {err}", None)
                self.errors.append(tb)

    # ------------------------------------------------------------ chunks

    def process(self, chunk: BarChunk) -> None:
        cols, offset = self.store.with_chunk(chunk, self.window - 1)
        self.view.set_data(cols, offset)
        self._sync_position_view()
        if not self.started:
            self.started = True
            self._guard(self.strategy.init, int(chunk.ts[0]))
        if self.bus.wants_bars:
            for k in range(len(chunk)):
                self.bus.emit(chunk.bar(k))
        n = len(chunk)
        self._marks = [(0, float(self.qty), float(self.cash))]
        i = 0
        while i < n:
            self._i = i
            i = self._step(i, n)
        self.store.extend(chunk)
        self._record(chunk)
        self._i = 0
        if self.halted is None and self.cfg.reload:
            message = self.strategy.reload_if_changed()
            if message:
                self.bus.emit(ErrorEvent(self.symbol, int(chunk.ts[-1]), message, kind="reload"))

    def _record(self, chunk: BarChunk) -> None:
        n = len(chunk)
        idx = [m[0] for m in self._marks] + [n]
        lengths = np.diff(np.asarray(idx))
        qty = np.repeat(np.array([m[1] for m in self._marks]), lengths)
        cash = np.repeat(np.array([m[2] for m in self._marks]), lengths)
        self._ts.append(chunk.ts)
        self._pnl.append(cash + qty * chunk.close)
        self._exposed.append(qty != 0)

    def _step(self, i: int, n: int) -> int:
        v, o = self.view, self.view.offset
        if self.pending is not None and self.broker.simulated and self.broker.fill_at == "next_open":
            if self.pending.ts < int(v.ts[o + i]):
                for fill in self.broker.match(self.symbol, int(v.ts[o + i]), float(v.open[o + i])):
                    self.apply_fill(fill, i)
        if self.halted is not None or self.pending is not None:
            return n if self.pending is None or not self.broker.simulated else i + 1
        state = self.sm.state
        stop = n
        hit: tuple[int, float, str] | None = None
        if state is State.IN_TRADE:
            hit = self._first_stop(i, n)
            if hit is not None:
                stop = hit[0]
        elif state is State.CLOSE_WATCH and self.expiry is not None:
            lapse = self.expiry - v.seen
            if lapse <= i:
                self._transition(State.WATCH, int(v.ts[o + i]), "setup expired")
                return i
            stop = min(stop, lapse)
        k, decision = self._scan(state, i, stop)
        if k is None:  # the strategy failed and the symbol halted
            return i + 1
        if state is State.IN_TRADE:
            self._advance_best(i, min(k + 1, stop))
        if decision is None:
            if hit is not None and k == hit[0]:
                self._exit(hit[0], hit[2], hit[1])
                return hit[0] + 1
            return stop
        self._apply(state, decision, k)
        return k + 1

    def _scan(self, state: State, start: int, stop: int) -> tuple[int | None, Decision | None]:
        if start >= stop:
            return start, None
        try:
            return self.strategy.scan(state, start, stop)
        except StrategyError as err:
            ts = int(self.view.ts[self.view.offset + start])
            self.halt(str(err), ts)
            return None, None

    # ------------------------------------------------------------ decisions

    def _apply(self, state: State, d: Decision, k: int) -> None:
        ts = int(self.view.ts[self.view.offset + k])
        self.bus.emit(SignalEvent(self.symbol, ts, d.action, _detail(d)))
        if d.action in ("setup", "enter") and state is State.WATCH:
            self._transition(State.CLOSE_WATCH, ts, d.reason or d.action)
            self.expiry = self.view.seen + k + d.expires if d.expires else None
            if d.action == "setup":
                k2, d2 = self._scan(State.CLOSE_WATCH, k, k + 1)
                if d2 is not None and k2 is not None:
                    self._apply(State.CLOSE_WATCH, d2, k2)
                return
        if d.action == "enter":
            qty = d.qty or self.cfg.qty
            self.pending_decision = d
            self._send(d.side, qty, ts, d.reason or "enter", k)
        elif d.action == "cancel":
            self.expiry = None
            self._transition(State.WATCH, ts, d.reason or "cancel")
        elif d.action == "exit":
            self._exit(k, d.reason or "exit", None)
        elif d.action == "adjust":
            self._set_stops(d, None)
            self._sync_position_view()

    def _send(self, side: Side, qty: Decimal, ts: int, reason: str, k: int, price: float | None = None) -> None:
        try:
            self.pending = self.execution.submit(self.symbol, side, qty, ts, reason)
        except EngineError as err:
            self.halt(f"order refused: {err}", ts)
            return
        self.pending_filled = Decimal(0)
        self.orders += 1
        if self.broker.simulated and (price is not None or self.broker.fill_at == "close"):
            at = float(self.view.close[self.view.offset + k]) if price is None else price
            for fill in self.broker.match(self.symbol, ts, at):
                self.apply_fill(fill, k)

    def _exit(self, k: int, reason: str, price: float | None) -> None:
        if self.qty == 0 or self.pending is not None:
            return
        side = Side.SELL if self.qty > 0 else Side.BUY
        ts = int(self.view.ts[self.view.offset + k])
        self._send(side, abs(self.qty), ts, reason, k, price)

    # ------------------------------------------------------------ stops

    def _set_stops(self, d: Decision | None, fill_price: float | None) -> None:
        cfg, long = self.cfg, self.qty > 0
        if fill_price is not None:  # defaults from the config, relative to the entry
            sign = 1 if long else -1
            self.stop_loss = fill_price * (1 - sign * cfg.stop_loss) if cfg.stop_loss else None
            self.take_profit = fill_price * (1 + sign * cfg.take_profit) if cfg.take_profit else None
            self.trailing = cfg.trailing_stop
            self.best = fill_price
        if d is not None:
            if d.stop_loss is not None:
                self.stop_loss = d.stop_loss
            if d.take_profit is not None:
                self.take_profit = d.take_profit
            if d.trailing_stop is not None:
                self.trailing = d.trailing_stop

    def _advance_best(self, start: int, stop: int) -> None:
        if self.trailing is None or stop <= start:
            return
        o = self.view.offset
        if self.qty > 0:
            self.best = max(self.best, float(self.view.high[o + start : o + stop].max()))
        else:
            self.best = min(self.best, float(self.view.low[o + start : o + stop].min()))

    def _first_stop(self, i: int, n: int) -> tuple[int, float, str] | None:
        """The first bar in [i, n) whose range touches a stop: (bar, fill price, reason)."""
        if self.stop_loss is None and self.take_profit is None and self.trailing is None:
            return None
        v, o = self.view, self.view.offset
        lo, hi, op = v.low[o + i : o + n], v.high[o + i : o + n], v.open[o + i : o + n]
        long = self.qty > 0
        candidates: list[tuple[int, int, float, str]] = []  # (bar, priority, price, reason)

        def first(mask: np.ndarray) -> int | None:
            j = int(mask.argmax())
            return j if mask[j] else None

        if self.stop_loss is not None:
            sl = self.stop_loss
            j = first(lo <= sl) if long else first(hi >= sl)
            if j is not None:
                px = min(op[j], sl) if long else max(op[j], sl)
                candidates.append((j, 0, float(px), "stop_loss"))
        if self.trailing is not None:
            if long:
                best = np.maximum.accumulate(np.concatenate(([self.best], hi[:-1])))
                level = best * (1 - self.trailing)
                j = first(lo <= level)
            else:
                best = np.minimum.accumulate(np.concatenate(([self.best], lo[:-1])))
                level = best * (1 + self.trailing)
                j = first(hi >= level)
            if j is not None:
                px = min(op[j], level[j]) if long else max(op[j], level[j])
                candidates.append((j, 1, float(px), "trailing_stop"))
        if self.take_profit is not None:
            tp = self.take_profit
            j = first(hi >= tp) if long else first(lo <= tp)
            if j is not None:
                px = max(op[j], tp) if long else min(op[j], tp)
                candidates.append((j, 2, float(px), "take_profit"))
        if not candidates:
            return None
        j, _, px, reason = min(candidates)
        return i + j, px, reason

    # ------------------------------------------------------------ fills

    def apply_fill(self, fill: Fill, i: int) -> None:
        """Book a fill into the position; ``i`` is the chunk bar it marks from."""
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        before = self.qty
        self.qty = before + signed
        self.cash -= signed * fill.price + fill.commission
        self.fills += 1
        self.bus.emit(FillEvent(fill))
        if before == 0 and self.qty != 0:
            index = self.view.seen + i + 1
            self.entry = _Entry(fill.ts, fill.price, abs(signed), fill.commission, fill.side, index)
        elif self.entry is not None and abs(self.qty) > abs(before) and (self.qty > 0) == (before > 0):
            e = self.entry  # adding to the position: average the entry
            total = e.qty + fill.qty
            e.price = (e.price * e.qty + fill.price * fill.qty) / total
            e.qty, e.commission = total, e.commission + fill.commission
        elif self.entry is not None and self.qty == 0:
            self._close_round_trip(fill)
        self._marks.append((i, float(self.qty), float(self.cash)))

        order = self.pending
        if order is not None and fill.client_id == order.client_id:
            self.pending_filled += fill.qty
            if self.pending_filled >= order.qty:
                self.pending = None
                self._order_done(order, fill)
        self._sync_position_view()
        self._guard(lambda: self.strategy.on_fill(fill), fill.ts)

    def _order_done(self, order: Order, fill: Fill) -> None:
        state = self.sm.state
        if state is State.CLOSE_WATCH and self.qty != 0:
            self.expiry = None
            self._transition(State.IN_TRADE, fill.ts, "entry filled")
            self._set_stops(self.pending_decision, float(self.entry.price if self.entry else fill.price))
            self.pending_decision = None
        elif state is State.IN_TRADE and self.qty == 0:
            self.stop_loss = self.take_profit = self.trailing = None
            self._transition(State.WATCH, fill.ts, order.reason)
        if self.halted is not None and self.cfg.on_error == "flatten" and self.qty != 0:
            self._exit(self._i, "halt", None)

    def _close_round_trip(self, fill: Fill) -> None:
        e = self.entry
        assert e is not None
        direction = 1 if e.side is Side.BUY else -1
        commission = e.commission + fill.commission
        pnl = (fill.price - e.price) * e.qty * direction - commission
        reason = self.pending.reason if self.pending is not None else "exit"
        self.trades.append(
            RoundTrip(self.symbol, e.side, e.qty, e.ts, e.price, fill.ts, fill.price, pnl, commission, reason)
        )
        self.entry = None

    def _sync_position_view(self) -> None:
        p = self.view.position
        p.qty = float(self.qty)
        p.avg_price = float(self.entry.price) if self.entry else 0.0
        p.entry_ts = self.entry.ts if self.entry else 0
        p.entry_index = self.entry.index if self.entry else 0
        p.stop_loss, p.take_profit, p.trailing_stop = self.stop_loss, self.take_profit, self.trailing

    # ------------------------------------------------------------ state, errors

    def _transition(self, to: State, ts: int, reason: str) -> None:
        self.bus.emit(self.sm.transition(to, ts, reason))

    def _guard(self, call: Any, ts: int) -> None:
        if self.halted is not None:
            return
        try:
            call()
        except StrategyError as err:
            self.halt(str(err), ts)

    def halt(self, message: str, ts: int | None) -> None:
        """Stop this symbol's strategy; flatten if the config says so."""
        if self.halted is not None:
            self.errors.append(message)
            return
        self.halted = message
        self.errors.append(message)
        self.bus.emit(ErrorEvent(self.symbol, ts, message, kind="halted"))
        if self.cfg.on_error == "flatten" and self.qty != 0 and self.pending is None and self.view.n:
            self._exit(self._i, "halt", None)

    # ------------------------------------------------------------ result

    def result(self) -> SymbolResult:
        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        return SymbolResult(
            symbol=self.symbol,
            ts=cat(self._ts, np.int64),
            pnl=cat(self._pnl, np.float64),
            exposed=cat(self._exposed, bool),
            trades=list(self.trades),
            orders=self.orders,
            fills=self.fills,
            final_state=self.sm.state.value,
            position_qty=self.qty,
            halted=self.halted,
            errors=list(self.errors),
        )


def _detail(d: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if d.action == "enter":
        out["side"] = d.side.value
    for key in ("qty", "stop_loss", "take_profit", "trailing_stop", "expires"):
        value = getattr(d, key)
        if value is not None:
            out[key] = str(value) if isinstance(value, Decimal) else value
    if d.reason:
        out["reason"] = d.reason
    return out
