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
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine_core.brokers import Broker, OrderStatus
from engine_core.config import StrategySection
from engine_core.control import ControlError, Request
from engine_core.errors import EngineError, RiskError, StrategyError
from engine_core.events import EventBus
from engine_core.execution import ExecutionEngine
from engine_core.journal import Journal
from engine_core.model import (
    Bar,
    BarChunk,
    ErrorEvent,
    Fill,
    FillEvent,
    Order,
    OrderEvent,
    RoundTrip,
    Side,
    SignalEvent,
    State,
)
from engine_core.results import SymbolResult
from engine_core.risk import KillState
from engine_core.statemachine import StateMachine
from engine_core.storage import BarWindow, Series
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
        journal: Journal | None = None,
    ) -> None:
        self.symbol = symbol
        self.journal = journal
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
        self.paused = False  # by a control command: the strategy is not asked, stops still act
        self.started = False
        self.last_ts: int | None = None  # the last bar processed (a restart resumes after it)
        self.bars_done = 0  # bars processed up to last_ts
        self.fill_keys: set[str] = set()  # fills booked, so none is booked twice
        self.risk = execution.risk
        self.start_cash = float(self.risk.account.start_cash)
        self.kill = KillState()
        limits = self.risk.limits(symbol)
        self.kill_rules = limits.daily_loss_limit is not None or limits.max_drawdown is not None
        self.kill_action = limits.kill_action

        self.trades: list[RoundTrip] = []
        self.errors: list[str] = []
        self.orders = 0
        self.fills = 0
        self._ts = Series(np.int64)
        self._pnl = Series(np.float64)
        self._exposed = Series(bool)
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
                    self.process(BarChunk.from_bar(msg))
                elif isinstance(msg, Fill):
                    self.apply_fill(msg, 0)
                elif isinstance(msg, Request):
                    self.control(msg)
            except EngineError as err:
                self.halt(str(err), None)
            except Exception as err:  # a bug: keep the engine alive, say so loudly
                tb = traceback.format_exc(limit=5)
                self.halt(f"internal error: {type(err).__name__}: {err}", None)
                self.errors.append(tb)

    # ------------------------------------------------------------ chunks

    def process(self, chunk: BarChunk) -> None:
        if self.last_ts is not None and len(chunk) and int(chunk.ts[0]) <= self.last_ts:
            chunk = chunk.slice(int(np.searchsorted(chunk.ts, self.last_ts, "right")), len(chunk))
        if len(chunk) == 0:
            return
        cols, offset = self.store.push(chunk, self.window - 1)
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
        self._record(chunk)
        self._i = 0
        self.last_ts = int(chunk.ts[-1])
        self.bars_done += len(chunk)
        self._persist()
        if self.halted is None and self.cfg.reload:
            message = self.strategy.reload_if_changed()
            if message:
                self.bus.emit(ErrorEvent(self.symbol, int(chunk.ts[-1]), message, kind="reload"))

    def _record(self, chunk: BarChunk) -> None:
        """Mark the chunk's bars to market: PnL and exposure at each close."""
        n = len(chunk)
        _, qty, cash = self._marks[-1]
        if n == 1:  # live: one bar, the position as it stands after the bar
            pnl = cash + qty * float(chunk.close[0])
            self._ts.append(chunk.ts[0])
            self._pnl.append(pnl)
            self._exposed.append(qty != 0)
        else:
            idx = [m[0] for m in self._marks] + [n]
            lengths = np.diff(np.asarray(idx))
            qtys = np.repeat(np.array([m[1] for m in self._marks]), lengths)
            pnls = np.repeat(np.array([m[2] for m in self._marks]), lengths) + qtys * chunk.close
            self._ts.extend(chunk.ts)
            self._pnl.extend(pnls)
            self._exposed.extend(qtys != 0)
            pnl = float(pnls[-1])
        if self.risk.tracks_account:
            self.risk.account.update(self.symbol, pnl, abs(qty * float(chunk.close[-1])))

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
        kill = self._first_kill(i, stop + 1 if hit is not None else stop)
        if kill is not None and (hit is None or kill[0] < hit[0]):
            stop, hit = kill[0], None
        if state is State.CLOSE_WATCH and self.expiry is not None:
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
                self._consume_kill(i, k + 1)
                self._exit(hit[0], hit[2], hit[1])
                return hit[0] + 1
            if kill is not None and k == kill[0]:
                self._consume_kill(i, k + 1)
                self._kill_switch(k, kill[1])
                return k + 1
            self._consume_kill(i, stop)
            return stop
        self._consume_kill(i, k + 1)
        self._apply(state, decision, k)
        return k + 1

    def _scan(self, state: State, start: int, stop: int) -> tuple[int | None, Decision | None]:
        if start >= stop:
            return start, None
        if self.paused:
            return stop, None
        try:
            return self.strategy.scan(state, start, stop)
        except StrategyError as err:
            ts = int(self.view.ts[self.view.offset + start])
            self.halt(str(err), ts)
            return None, None

    # ------------------------------------------------------------ kill switches

    def _equity(self, start: int, stop: int) -> np.ndarray:
        """The symbol's equity (start cash + its PnL) at the closes of chunk bars [start, stop)."""
        o = self.view.offset
        return self.start_cash + float(self.cash) + float(self.qty) * self.view.close[o + start : o + stop]

    def _first_kill(self, start: int, stop: int) -> tuple[int, str] | None:
        if not self.kill_rules or stop <= start:
            return None
        o = self.view.offset
        probe = KillState(**asdict(self.kill))
        hit = self.risk.first_kill(self.symbol, self.view.ts[o + start : o + stop], self._equity(start, stop), probe)
        return None if hit is None else (start + hit[0], hit[1])

    def _consume_kill(self, start: int, stop: int) -> None:
        """Advance the kill-switch memory over bars the worker has finished."""
        if self.kill_rules and stop > start:
            o = self.view.offset
            self.risk.first_kill(self.symbol, self.view.ts[o + start : o + stop], self._equity(start, stop), self.kill)

    def _kill_switch(self, k: int, rule: str) -> None:
        ts = int(self.view.ts[self.view.offset + k])
        if self.kill_action == "flatten" and self.qty != 0:
            self._exit(k, rule, None)
        self.halt(f"{self.symbol}: kill switch {rule} tripped; trading stopped ({self.kill_action})", ts, flatten=False)

    # ------------------------------------------------------------ decisions

    def _apply(self, state: State, d: Decision, k: int) -> None:
        ts = int(self.view.ts[self.view.offset + k])
        if self.bus.listening:
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
            price = float(self.view.close[self.view.offset + k])
            stop = d.stop_loss
            if stop is None and self.cfg.stop_loss:
                stop = price * (1 - d.side.sign * self.cfg.stop_loss)
            try:
                qty = d.qty or self.risk.size(
                    self.symbol, price, stop, self.start_cash + float(self.cash), self.cfg.qty
                )
            except RiskError as err:
                self._not_placed(ts, err)
                return
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
            self._persist()

    def _send(
        self, side: Side, qty: Decimal, ts: int, reason: str, k: int, price: float | None = None, reducing: bool = False
    ) -> None:
        last = float(self.view.close[self.view.offset + k]) if price is None else price
        try:
            order, status = self.execution.submit(
                self.symbol, side, qty, ts, reason, price=last, position=self.qty, reducing=reducing
            )
        except EngineError as err:
            self._not_placed(ts, err)
            return
        self.pending = order
        self.pending_filled = Decimal(0)
        self.orders += 1
        self._persist()
        if status is not None:
            self.book_status(order.client_id, status, k)
        if self.broker.simulated and self.pending is not None and (price is not None or self.broker.fill_at == "close"):
            at = float(self.view.close[self.view.offset + k]) if price is None else price
            for fill in self.broker.match(self.symbol, ts, at):
                self.apply_fill(fill, k)

    def _not_placed(self, ts: int, err: EngineError) -> None:
        self.pending_decision = None
        rule = f" by {err.rule}" if isinstance(err, RiskError) and err.rule else ""
        self.bus.emit(ErrorEvent(self.symbol, ts, f"order not placed: {err}", kind="order"))
        if self.sm.state is State.CLOSE_WATCH:
            self._transition(State.WATCH, ts, f"entry refused{rule}" if rule else "entry not placed")

    def book_status(self, client_id: str, status: OrderStatus, i: int = 0) -> None:
        """Book what the broker reports of an order (after a timeout or a restart)."""
        for fill in status.fills:
            self.apply_fill(fill, i)
        if (
            status.status in ("cancelled", "rejected")
            and self.pending is not None
            and self.pending.client_id == client_id
        ):
            self._order_gone(f"order {client_id} {status.status} by the broker")

    def _order_gone(self, why: str) -> None:
        """The pending order will never fill: back to where the strategy decides again."""
        order = self.pending
        self.pending = None
        self.pending_decision = None
        if order is not None:
            self.execution.order_closed()
            self.bus.emit(OrderEvent(order, "cancelled", why))
        if self.sm.state is State.CLOSE_WATCH and self.qty == 0:
            self._transition(State.WATCH, order.ts if order else 0, why)
        self._persist()

    def _exit(self, k: int, reason: str, price: float | None) -> None:
        if self.qty == 0 or self.pending is not None:
            return
        side = Side.SELL if self.qty > 0 else Side.BUY
        ts = int(self.view.ts[self.view.offset + k])
        self._send(side, abs(self.qty), ts, reason, k, price, reducing=True)

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
        if self.journal is not None and (self.stop_loss or self.take_profit or self.trailing):
            ts = self.entry.ts if fill_price is not None and self.entry else self.last_ts
            self.journal.event(
                "stops",
                self.symbol,
                ts,
                stop_loss=self.stop_loss,
                take_profit=self.take_profit,
                trailing_stop=self.trailing,
            )

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
        """Book a fill into the position; ``i`` is the chunk bar it marks from.

        The fill, its order's status and the new position are journaled in
        one transaction; a fill already booked (same client id and trade id)
        is ignored. A fill for an order that is not pending (a late fill of an
        order given up as lost) is booked all the same: the position the
        broker holds is the truth."""
        if fill.key in self.fill_keys:
            return
        self.fill_keys.add(fill.key)
        order = self.pending if self.pending is not None and self.pending.client_id == fill.client_id else None
        if order is None:
            self.bus.emit(
                ErrorEvent(
                    self.symbol, fill.ts, f"fill for order {fill.client_id}, which was not pending: booked", kind="fill"
                )
            )
        cumulative = self.pending_filled + fill.qty if order is not None else fill.qty
        complete = order is None or cumulative >= order.qty
        if self.journal is None:
            self._emit_fill(fill)
            self._book(fill, i, order, cumulative, complete)
        else:
            with self.journal.transaction():
                self.journal.fill(
                    fill.client_id,
                    self.symbol,
                    fill.ts,
                    str(cumulative),
                    "filled" if complete else "partially_filled",
                    side=fill.side.value,
                    qty=str(fill.qty),
                    price=str(fill.price),
                    commission=str(fill.commission),
                    trade_id=fill.trade_id,
                )
                self._emit_fill(fill)
                self._book(fill, i, order, cumulative, complete)
                self._persist()
        self._guard(lambda: self.strategy.on_fill(fill), fill.ts)
        if self.halted is not None and self.cfg.on_error == "flatten" and self.qty != 0 and self.view.n:
            self._exit(self._i, "halt", None)

    def _emit_fill(self, fill: Fill) -> None:
        if self.bus.listening:
            self.bus.emit(FillEvent(fill))

    def _book(self, fill: Fill, i: int, order: Order | None, cumulative: Decimal, complete: bool) -> None:
        signed = fill.qty if fill.side is Side.BUY else -fill.qty
        before = self.qty
        self.qty = before + signed
        self.cash -= signed * fill.price + fill.commission
        self.fills += 1
        if before == 0 and self.qty != 0:
            index = self.view.seen + i + 1
            self.entry = _Entry(fill.ts, fill.price, abs(signed), fill.commission, fill.side, index)
        elif self.entry is not None and abs(self.qty) > abs(before) and (self.qty > 0) == (before > 0):
            e = self.entry  # adding to the position: average the entry
            total = e.qty + fill.qty
            e.price = (e.price * e.qty + fill.price * fill.qty) / total
            e.qty, e.commission = total, e.commission + fill.commission
        elif self.entry is not None and self.qty == 0:
            self._close_round_trip(fill, order.reason if order is not None else "exit")
        self._marks.append((i, float(self.qty), float(self.cash)))
        if self.risk.tracks_account:
            last = float(self.view.close[self.view.offset + i]) if self.view.n else float(fill.price)
            self.risk.account.update(
                self.symbol, float(self.cash) + float(self.qty) * last, float(abs(self.qty)) * last
            )
        if order is not None:
            self.pending_filled = cumulative
            if complete:
                self.pending = None
                self.execution.order_closed()
                self._order_done(order, fill)
        self._sync_position_view()

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

    def _close_round_trip(self, fill: Fill, reason: str) -> None:
        e = self.entry
        assert e is not None
        direction = 1 if e.side is Side.BUY else -1
        commission = e.commission + fill.commission
        pnl = (fill.price - e.price) * e.qty * direction - commission
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
        event = self.sm.transition(to, ts, reason)
        if self.journal is not None:
            with self.journal.transaction():
                self.journal.event(
                    "transition", self.symbol, ts, frm=event.from_state.value, to=to.value, reason=reason
                )
                self._persist()
        if self.bus.listening:
            self.bus.emit(event)

    def _guard(self, call: Any, ts: int) -> None:
        if self.halted is not None:
            return
        try:
            call()
        except StrategyError as err:
            self.halt(str(err), ts)

    def halt(self, message: str, ts: int | None, flatten: bool = True) -> None:
        """Stop this symbol's strategy; flatten if the config says so."""
        if self.halted is not None:
            self.errors.append(message)
            return
        self.halted = message
        self.errors.append(message)
        if self.journal is not None:
            with self.journal.transaction():
                self.journal.event("halted", self.symbol, ts, message=message)
                self._persist()
        self.bus.emit(ErrorEvent(self.symbol, ts, message, kind="halted"))
        if flatten and self.cfg.on_error == "flatten" and self.qty != 0 and self.pending is None and self.view.n:
            self._exit(self._i, "halt", None)

    # ------------------------------------------------------------ control

    def control(self, request: Request) -> None:
        """Act on a control command between chunks (engine_core.control) and
        answer it: the result's message, or ControlError when refused."""
        name, reply = request.command.name, request.reply
        last = int(self.view.ts[-1]) if self.view.n else self.last_ts
        try:
            if name == "pause":
                done = "already paused" if self.paused else "paused: the strategy is not asked, stops still act"
                self.paused = True
            elif name == "resume":
                if self.halted is not None:
                    raise ControlError(f"{self.symbol} is halted ({self.halted}); resume only undoes a pause")
                done = "resumed" if self.paused else "was not paused"
                self.paused = False
            elif name == "flatten":
                if self.pending is not None:
                    pending = self.pending.client_id
                    raise ControlError(f"{self.symbol}: order {pending} is pending; flatten once it is done")
                if self.qty == 0:
                    done = "already flat"
                    if self.sm.state is State.CLOSE_WATCH:
                        self.expiry = None
                        self._transition(State.WATCH, last or 0, "flatten command")
                        done = "already flat; the setup is cancelled"
                elif not self.view.n:
                    raise ControlError(f"{self.symbol}: no bar yet to price an order at")
                else:
                    self._exit(self.view.n - 1, "flatten", None)
                    if self.pending is None and self.qty != 0:
                        raise ControlError(f"{self.symbol}: the flatten order was not placed (see the error event)")
                    done = f"flatten order {self.pending.client_id} sent" if self.pending else "flattened"
            elif name == "reload":
                done = self.strategy.reload_if_changed() or "the strategy file is unchanged"
            else:
                raise ControlError(f"{name} is not a symbol command")
        except EngineError as err:
            reply.set_exception(err)
            return
        except Exception as err:  # a bug: answer, then let the loop report it
            reply.set_exception(err)
            raise
        self.bus.emit(ErrorEvent(self.symbol, last, f"{name} command: {done}", kind="control"))
        reply.set_result(done)

    # ------------------------------------------------------------ journal

    def snapshot(self) -> dict[str, Any]:
        e = self.entry
        return {
            "state": self.sm.state.value,
            "qty": str(self.qty),
            "cash": str(self.cash),
            "entry": None
            if e is None
            else {
                "ts": e.ts,
                "price": str(e.price),
                "qty": str(e.qty),
                "commission": str(e.commission),
                "side": e.side.value,
                "index": e.index,
            },
            "pending": None if self.pending is None else self.pending.client_id,
            "pending_filled": str(self.pending_filled),
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "trailing_stop": self.trailing,
            "best": self.best,
            "expiry": self.expiry,
            "halted": self.halted,
            "last_ts": self.last_ts,
            "bars": self.bars_done,
            "kill": asdict(self.kill),
        }

    def _persist(self) -> None:
        if self.journal is not None:
            self.journal.save_symbol(self.symbol, self.snapshot())

    def restore(self, snap: dict[str, Any], open_orders: list[Order], fill_keys: set[str]) -> None:
        """Take up where a previous run of this engine left off."""
        self.sm = StateMachine(self.symbol, State(snap["state"]))
        self.qty, self.cash = Decimal(snap["qty"]), Decimal(snap["cash"])
        e = snap["entry"]
        self.entry = (
            None
            if e is None
            else _Entry(
                e["ts"], Decimal(e["price"]), Decimal(e["qty"]), Decimal(e["commission"]), Side(e["side"]), e["index"]
            )
        )
        self.pending = next((o for o in open_orders if o.client_id == snap["pending"]), None)
        if self.pending is None and open_orders:
            self.pending = open_orders[-1]  # journaled as sent, snapshot not yet written
        self.pending_filled = Decimal(snap["pending_filled"]) if self.pending is not None else Decimal(0)
        self.stop_loss, self.take_profit = snap["stop_loss"], snap["take_profit"]
        self.trailing, self.best, self.expiry = snap["trailing_stop"], snap["best"], snap["expiry"]
        self.halted, self.last_ts = snap["halted"], snap["last_ts"]
        self.view.seen = self.bars_done = snap["bars"]
        self.kill = KillState(**snap.get("kill", {}))
        self.fill_keys = set(fill_keys)
        self._sync_position_view()

    # ------------------------------------------------------------ result

    def result(self) -> SymbolResult:
        return SymbolResult(
            symbol=self.symbol,
            ts=self._ts.array(),
            pnl=self._pnl.array(),
            exposed=self._exposed.array(),
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
