"""One symbol's worker: its thread, the stepping through bars, and the calls
to its strategy.

The worker takes bars in chunks (one bar live, many in a backtest) and
broker updates between them, from its own inbox. It walks a chunk bar by bar
in this order:

1. the order in flight of a simulated broker is matched against the bar
   (``fill = "next_open"``: a market order at its open; a limit where the
   range reaches it), and an entry limit past its ``expires`` is cancelled;
2. in a trade, the engine's stops and the kill switches are checked against
   the bar's range (vectorised over the chunk: ``stops.py``), so the strategy
   is only asked about the bars before the first hit;
3. the strategy's function for the current state decides on the bar's close
   (the host scans bars until one returns a decision).

An order in flight does not freeze the symbol: stops, kill switches and the
strategy keep running (a decision that would send a second order waits).
What an order does lives in ``orders.py`` (its lifecycle), the position in
``ledger.py``, the exits in ``stops.py``, the way to the broker in
``execution.py``. A strategy error halts only this symbol (``on_error``
keeps or flattens the position). Every transition, order and fill is an
event, and with a journal, written before it is acted on.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

import numpy as np

from engine_core.brokers import Broker, SimulatedBroker
from engine_core.candles import Candles
from engine_core.config import StrategySection
from engine_core.control import ControlError, Request
from engine_core.errors import EngineError, OrderLost, RiskError, StrategyError, error_text
from engine_core.events import EventBus
from engine_core.execution import HELD, ExecutionEngine
from engine_core.journal import Journal, order_from_row
from engine_core.ledger import Ledger
from engine_core.model import (
    BUY,
    SELL,
    Bar,
    BarChunk,
    ErrorEvent,
    Fill,
    FillEvent,
    Order,
    OrderType,
    Side,
    SignalEvent,
    State,
    iso_utc,
    to_decimal,
)
from engine_core.orders import (
    InFlight,
    OrderState,
    OrderStatus,
    OrderTracker,
    OrderUpdate,
    UpdateKind,
)
from engine_core.results import SymbolResult
from engine_core.risk import KillSwitch
from engine_core.statemachine import StateMachine
from engine_core.stops import StopHit, Stops, stop_price_from
from engine_core.storage import BarWindow
from engine_core.strategy import Decision, StrategyHost, SymbolView
from engine_core.strategy_log import StrategyLog

STOP = object()  # put in a worker's inbox to end it after what is queued


class Warmup(NamedTuple):
    """History fed through indicators and strategy before the first live bar, without trading."""

    chunk: BarChunk


_TERMINAL_UPDATE = {
    OrderStatus.CANCELLED: UpdateKind.CANCEL,
    OrderStatus.REJECTED: UpdateKind.REJECT,
    OrderStatus.EXPIRED: UpdateKind.EXPIRE,
}

# Enum members the order path reads, looked up once: on Python 3.11 each
# ``State.X`` goes through the enum metaclass's __getattr__ hook (~0.2 us).
_WATCH, _CLOSE_WATCH, _IN_TRADE = State.WATCH, State.CLOSE_WATCH, State.IN_TRADE
_FILLED, _SUBMITTED, _UNKNOWN = OrderStatus.FILLED, OrderStatus.SUBMITTED, OrderStatus.UNKNOWN
_INTENT = OrderStatus.INTENT  # an order the broker holds back (execution.HELD)
_MARKET, _LIMIT = OrderType.MARKET, OrderType.LIMIT


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
        self.sim: SimulatedBroker | None = broker if isinstance(broker, SimulatedBroker) else None
        self.fill_next_open = self.sim is not None and self.sim.fill_at == "next_open"
        # A broker that trades any quantity (no lot step): only zero is flat.
        self._any_qty = type(broker).round_qty is Broker.round_qty
        self.bus = bus
        self.window = window
        self.store = BarWindow(symbol, window)
        self.view = SymbolView(symbol, strategy.params, window, StrategyLog(symbol, bus))
        self.strategy = host.bind(symbol, self.view)
        self.sm = StateMachine(symbol)
        # Live (unbounded): the C queue, whose put and get take no Python-level
        # lock or condition (queue.Queue's cost a thread a second wait per message).
        self.inbox: queue.Queue[Any] | queue.SimpleQueue[Any] = (
            queue.Queue(inbox_size) if inbox_size else queue.SimpleQueue()
        )
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()  # held while a message is processed
        self.done = False  # the thread has ended; late updates are applied by the caller

        self.ledger = Ledger(symbol)
        self.orders = OrderTracker()
        self.stops = Stops()
        self.risk = execution.risk
        self.kill = KillSwitch(symbol, self.risk)
        self.candles = Candles()  # the bars as candlesticks, for the report
        self.start_cash = float(self.risk.account.start_cash)
        self.entry_levels: tuple[float | None, float | None, float | None] | None = None  # the entry's decision stops
        # the entry whose bracket legs protect the position at the venue (journaled:
        # a restart asks for it, to learn what its legs did meanwhile)
        self.bracket: str | None = None
        self.expiry: int | None = None  # absolute bar index at which a setup lapses
        self.order_expiry: int | None = None  # absolute bar index at which a working entry limit is cancelled
        self.halted: str | None = None
        self.paused = False  # by a control command: the strategy is not asked, stops still act
        self.started = False
        self.last_ts: int | None = None  # the last bar processed (a restart resumes after it)
        self.bars_done = 0  # bars processed up to last_ts
        self.errors: list[str] = []
        self.orders_sent = 0
        self._restored_state: Any = None  # ctx.state from the journal, put back after init
        self.entries_allowed: Callable[[str, int], bool] | None = None  # the source's, when it has sessions
        self._i = 0  # chunk-relative index of the bar being processed

    # ------------------------------------------------------------ threading

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=f"worker-{self.symbol}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            msg = self.inbox.get()
            if msg is STOP:
                self._finish()
                return
            with self.lock:
                self.handle(msg)

    def handle(self, msg: Any) -> None:
        """Process one inbox message; an error halts this symbol only."""
        try:
            if type(msg) is BarChunk:
                self.process(msg)
            elif type(msg) is OrderUpdate:
                self.on_update(msg, self._i)
            elif type(msg) is Bar:
                self.process(BarChunk.from_bar(msg), msg)
            elif type(msg) is Warmup:
                self.warm(msg.chunk)
            elif type(msg) is Request:
                self.control(msg)
        except EngineError as err:
            self.halt(str(err), None)
        except Exception as err:  # a bug: keep the engine alive, say so loudly
            tb = traceback.format_exc(limit=5)
            self.halt(f"internal error {self._doing(msg)}{_raised_in(err, self.broker)}: {error_text(err)}", None)
            self.errors.append(tb)

    def _doing(self, msg: Any) -> str:
        """What the worker was doing with ``msg`` (for a halt line)."""
        if type(msg) is OrderUpdate:
            return f"applying the broker's {msg.kind.value} of order {msg.client_id}"
        if type(msg) is Warmup:
            return "warming up"
        if type(msg) is Request:
            return f"on control command {msg.command.name}"
        view = self.view
        if type(msg) in (BarChunk, Bar) and view.n and view.offset + self._i < len(view.ts):
            return f"at the bar of {iso_utc(int(view.ts[view.offset + self._i]))}"
        return "at a bar"

    def deliver(self, update: OrderUpdate) -> None:
        """A broker update for this symbol, from any thread; never blocks on
        the worker (a broker may report from inside ``submit``). After the
        worker has ended (shutdown), it is applied here so no fill is dropped."""
        self.inbox.put(update)
        if self.done:
            self._apply_queued_updates()

    def _finish(self) -> None:
        """STOP: apply the broker updates still queued (bars are left), then
        end; from now on ``deliver`` applies them itself."""
        self.done = True
        self._apply_queued_updates()

    def _apply_queued_updates(self) -> None:
        with self.lock:
            while True:
                try:
                    msg = self.inbox.get_nowait()
                except queue.Empty:
                    return
                if type(msg) is OrderUpdate:
                    self.handle(msg)

    # ------------------------------------------------------------ chunks

    def _accept(self, chunk: BarChunk) -> BarChunk:
        """The part of ``chunk`` after the last bar processed (a restart or a
        warm-up overlapping the first live bars)."""
        if self.last_ts is not None and len(chunk) and int(chunk.ts[0]) <= self.last_ts:
            chunk = chunk.slice(int(np.searchsorted(chunk.ts, self.last_ts, "right")), len(chunk))
        return chunk

    def _load(self, chunk: BarChunk, bar: Bar | None = None) -> None:
        cols, offset = self.store.push(chunk, self.window - 1)
        self.view.set_data(cols, offset, bar)
        self._sync_position_view()
        if not self.started:
            self.started = True
            self._guard(self.strategy.init, int(chunk.ts[0]))
            if self._restored_state is not None:  # a restart: ctx.state continues where it was
                self.strategy.restore_state(self._restored_state)
                self._restored_state = None

    def process(self, chunk: BarChunk, bar: Bar | None = None) -> None:
        """Step through ``chunk``; ``bar`` is its one bar when it came live as a Bar."""
        chunk = self._accept(chunk)
        if len(chunk) == 0:
            return
        self._load(chunk, bar)
        if self.bus.wants_bars:
            for k in range(len(chunk)):
                self.bus.emit(chunk.bar(k))
        n = len(chunk)
        self.ledger.begin_chunk()
        i = 0
        while i < n:
            self._i = i
            i = self._step(i, n)
        pnl = self.ledger.mark_chunk(chunk)
        self.candles.add(chunk.ts, chunk.open, chunk.high, chunk.low, chunk.close)
        if self.risk.tracks_account:
            qty = float(self.ledger.qty)
            self.risk.account.update(self.symbol, pnl, abs(qty * float(chunk.close[-1])))
        self._i = 0
        self.last_ts = int(chunk.ts[-1])
        self.bars_done += n
        self._persist(soon=True)  # only the bar's progress: committed with the other symbols' shortly
        if self.halted is None and self.cfg.reload:
            message = self.strategy.reload_if_changed()
            if message:
                self.bus.emit(ErrorEvent(self.symbol, int(chunk.ts[-1]), message, kind="reload"))

    def warm(self, chunk: BarChunk) -> None:
        """Feed history through the indicators and the strategy without
        trading: decisions are read and dropped, nothing is booked. After a
        restart the bars may overlap what the journal counted; they only
        rebuild the indicators (the position comes from the journal)."""
        if len(chunk) == 0 or self.view.n:
            return  # warm-up only comes before the first bar
        counted = self.bars_done
        self.view.seen = max(0, counted - len(chunk))
        self._load(chunk)
        n, i = len(chunk), 0
        while i < n and self.halted is None:
            k, _ = self._scan(self.sm.state, i, n)
            if k is None:
                break
            i = k + 1
        self.last_ts = max(self.last_ts or int(chunk.ts[-1]), int(chunk.ts[-1]))
        self.bars_done = max(counted, self.view.seen + n)

    def _step(self, i: int, n: int) -> int:
        v, o = self.view, self.view.offset
        if self.orders.current is not None:
            self._work_order(i)
        # With a simulated order working, go bar by bar so it is matched on each.
        end = i + 1 if self.orders.current is not None and self.sim is not None else n
        if self.halted is not None:
            return end
        state = self.sm.state
        stop = end
        hit: StopHit | None = None
        if state is State.IN_TRADE and self.orders.current is None and self.stops.active:
            hit = self._first_stop(i, end)
            if hit is not None:
                stop = hit.bar
        kill = self._first_kill(i, stop + 1 if hit is not None else stop) if self.kill.enabled else None
        if kill is not None and (hit is None or kill[0] < hit.bar):
            stop, hit = kill[0], None
        if state is State.CLOSE_WATCH and self.expiry is not None:
            lapse = self.expiry - v.seen
            if lapse <= i:
                self.expiry = None
                self._transition(State.WATCH, int(v.ts[o + i]), "setup expired")
                return i
            stop = min(stop, lapse)
        k, decision = self._scan(state, i, stop)
        if k is None:  # the strategy failed and the symbol halted
            return i + 1
        if self.stops.trailing is not None and state is State.IN_TRADE:  # (no slicing when nothing trails)
            self.stops.advance_best(
                v.high[o + i : o + min(k + 1, stop)], v.low[o + i : o + min(k + 1, stop)], self.ledger.qty > 0
            )
        if decision is None:
            if hit is not None and k == hit.bar:
                self._consume_kill(i, k + 1)
                self._exit(hit.bar, hit.reason, hit.price)
                return hit.bar + 1
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

    def _work_order(self, i: int) -> None:
        """Match a simulated order against bar ``i``; cancel an entry limit past its expiry."""
        cur = self.orders.current
        assert cur is not None
        v, j = self.view, self.view.offset + i
        ts = int(v.ts[j])
        if self.sim is not None and cur.order.ts < ts and (self.fill_next_open or cur.order.type is _LIMIT):
            for update in self.sim.match(self.symbol, ts, float(v.open[j]), float(v.high[j]), float(v.low[j])):
                self.on_update(update, i)
        if self.orders.current is not None and self.order_expiry is not None and v.seen + i >= self.order_expiry:
            self.order_expiry = None
            self._cancel(self.orders.current, i)

    # ------------------------------------------------------------ stops and kill switches

    def _first_stop(self, i: int, n: int) -> StopHit | None:
        v, o = self.view, self.view.offset
        hit = self.stops.first_hit(
            v.open[o + i : o + n], v.high[o + i : o + n], v.low[o + i : o + n], self.ledger.qty > 0
        )
        return None if hit is None else StopHit(i + hit.bar, hit.price, hit.reason)

    def _equity(self, start: int, stop: int) -> np.ndarray:
        """The symbol's equity (start cash + its PnL) at the closes of chunk bars [start, stop)."""
        o = self.view.offset
        close = self.view.close[o + start : o + stop]
        return self.start_cash + float(self.ledger.cash) + float(self.ledger.qty) * close

    def _first_kill(self, start: int, stop: int) -> tuple[int, str] | None:
        if not self.kill.enabled or stop <= start:
            return None
        o = self.view.offset
        hit = self.kill.first(self.view.ts[o + start : o + stop], self._equity(start, stop))
        return None if hit is None else (start + hit[0], hit[1])

    def _consume_kill(self, start: int, stop: int) -> None:
        if self.kill.enabled and stop > start:
            o = self.view.offset
            self.kill.consume(self.view.ts[o + start : o + stop], self._equity(start, stop))

    def _kill_switch(self, k: int, rule: str) -> None:
        ts = int(self.view.ts[self.view.offset + k])
        self._cancel_entry(k)
        if self.kill.action == "flatten" and self.ledger.qty != 0:
            self._exit(k, rule, None)
        self.halt(f"{self.symbol}: kill switch {rule} tripped; trading stopped ({self.kill.action})", ts, flatten=False)

    # ------------------------------------------------------------ decisions

    def _apply(self, state: State, d: Decision, k: int) -> None:
        ts = int(self.view.ts[self.view.offset + k])
        if self.bus.listening:
            self.bus.emit(SignalEvent(self.symbol, ts, d.action, d.detail()))
        action = d.action
        if state is _WATCH and action in ("setup", "enter"):
            self._transition(_CLOSE_WATCH, ts, d.reason or action)
            self.expiry = self.view.seen + k + d.expires if d.expires else None
            if action == "setup":
                k2, d2 = self._scan(_CLOSE_WATCH, k, k + 1)
                if d2 is not None and k2 is not None:
                    self._apply(_CLOSE_WATCH, d2, k2)
                return
        if action == "enter":
            self._enter(d, k, ts)
        elif action == "exit":
            self._exit(k, d.reason or "exit", None)
        elif action == "cancel":
            self.expiry = None
            if self.orders.current is not None:
                self._cancel(self.orders.current, k)  # back to Watch when the venue confirms
            else:
                self._transition(_WATCH, ts, d.reason or "cancel")
        elif action == "adjust":
            self.stops.override(d.stop_price, d.take_profit_price, d.trailing_stop)
            self._journal_stops(ts)
            self._sync_position_view()
            self._persist()

    def _enter(self, d: Decision, k: int, ts: int) -> None:
        if self.orders.current is not None:
            return  # an entry is already working
        if self.entries_allowed is not None and not self.entries_allowed(self.symbol, ts):
            refusal = RiskError(f"{self.symbol}: no entries now (outside the market's session)", rule="session")
            self._not_placed(ts, refusal)
            return
        price = float(self.view.close[self.view.offset + k])
        ref = d.limit_price if d.limit_price is not None else price
        sign = 1 if d.side is BUY else -1
        if d.stop_price is not None and (d.stop_price - ref) * sign >= 0:
            word = "below" if sign > 0 else "above"
            raise StrategyError(
                f"{self.symbol}: invalid decision: stop_price {d.stop_price:g} is not {word} the entry price "
                f"{ref:g} of a {d.side.value}"
            )
        if d.take_profit_price is not None and (d.take_profit_price - ref) * sign <= 0:
            word = "above" if sign > 0 else "below"
            raise StrategyError(
                f"{self.symbol}: invalid decision: take_profit_price {d.take_profit_price:g} is not {word} the "
                f"entry price {ref:g} of a {d.side.value}"
            )
        stop = d.stop_price
        if stop is None and self.cfg.stop_loss:
            stop = stop_price_from(ref, sign, self.cfg.stop_loss)
        try:
            qty = d.qty or self.risk.size(
                self.symbol, ref, stop, self.start_cash + float(self.ledger.cash), self.cfg.qty
            )
        except RiskError as err:
            self._not_placed(ts, err)
            return
        qty = self.broker.round_qty(self.symbol, qty)
        if qty <= 0:
            self._not_placed(ts, RiskError(f"{self.symbol}: entry quantity rounds to 0 at the venue's lot step"))
            return
        self.expiry = None
        self.entry_levels = (d.stop_price, d.take_profit_price, d.trailing_stop)
        placed = self._send(
            d.side, qty, ts, d.reason or "enter", k, limit=d.limit_price, stop=stop, target=d.take_profit_price
        )
        if placed and d.limit_price is not None and d.expires and self.orders.current is not None:
            self.order_expiry = self.view.seen + k + d.expires

    def _send(
        self,
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
        last = float(self.view.close[self.view.offset + k]) if price is None else price
        order = Order(
            self.execution.client_id(self.symbol),
            self.symbol,
            side,
            qty,
            ts,
            reason,
            _MARKET if limit is None else _LIMIT,
            None if limit is None else to_decimal(limit),
            stop_price=None if stop is None else to_decimal(stop),
            take_profit_price=None if target is None else to_decimal(target),
        )
        try:
            state = self.execution.submit(order, price=last, position=self.ledger.qty, reducing=reducing)
        except EngineError as err:
            if isinstance(err, OrderLost):  # remembered: a fill may still come if the venue had it after all
                self.orders.remember(InFlight(order, OrderStatus.LOST))
            self._not_placed(ts, err)
            return False
        status = _SUBMITTED if state is None else _INTENT if state is HELD else _UNKNOWN
        self.orders.open(order, status, self.view.seen + k)
        self.orders_sent += 1
        self._persist()
        if state is not None:
            self.apply_state(order, state, k)
        if self.sim is not None and self.orders.current is not None and limit is None:
            if price is not None or not self.fill_next_open:
                for update in self.sim.fill_market(self.symbol, ts, last):
                    self.on_update(update, k)
        return True

    def _not_placed(self, ts: int, err: EngineError) -> None:
        self.entry_levels = None
        rule = f" by {err.rule}" if isinstance(err, RiskError) and err.rule else ""
        self.bus.emit(ErrorEvent(self.symbol, ts, f"order not placed: {err}", kind="order"))
        if self.sm.state is State.CLOSE_WATCH and self._flat():
            self._transition(State.WATCH, ts, f"entry refused{rule}" if rule else "entry not placed")

    def _exit(self, k: int, reason: str, price: float | None) -> None:
        qty = self.ledger.qty
        if qty == 0 or self.orders.current is not None:
            return
        size = self.broker.round_qty(self.symbol, abs(qty))
        if size <= 0:
            return
        ts = int(self.view.ts[self.view.offset + k])
        self._send(SELL if qty > 0 else BUY, size, ts, reason, k, price, reducing=True)

    def _cancel(self, flight: InFlight, k: int) -> None:
        if flight.cancel_sent:
            return
        flight.cancel_sent = True
        if self.sim is not None:
            for update in self.sim.cancel_now(flight.order.client_id):
                self.on_update(update, k)
        else:
            self.execution.cancel(flight.order)

    def _cancel_entry(self, k: int) -> None:
        cur = self.orders.current
        if cur is not None and self.sm.state is State.CLOSE_WATCH:
            self._cancel(cur, k)

    # ------------------------------------------------------------ broker updates

    def on_update(self, update: OrderUpdate, i: int) -> None:
        """Apply a broker update (at chunk bar ``i``): its status, its fill,
        and what the order's end means for the state machine."""
        fill = update.fill
        if fill is not None and self.ledger.booked(fill):
            return  # a fill seen before (a resent update, or reported again after a restart)
        if update.leg and fill is not None:  # a bracket leg the venue held: it closes the position
            self._book(fill, i, None, None, reason=update.leg)
            self._settle_state(fill.ts, update.leg)
            return
        flight, status, done = self.orders.apply(update)
        if fill is not None:
            self._book(fill, i, flight, status)
        elif status is not None and flight is not None:
            self.execution.record(flight.order, status, update.reason, update.venue_id)
        if done and flight is not None:
            self.execution.order_closed()
            self._order_finished(flight, update.ts, update.reason)
        elif fill is not None and (flight is None or flight is not self.orders.current):
            # a late fill of an order given up (lost), or of one not known here
            self._settle_state(
                fill.ts, "fill of a finished order" if flight is not None else "fill of an unknown order"
            )

    def _book(self, fill: Fill, i: int, flight: InFlight | None, status: OrderStatus | None, reason: str = "") -> None:
        """Book a fill into the ledger, journaled with its order's status and
        the new position in one transaction; events go out once it is committed."""
        if flight is None and not reason:
            self.bus.emit(
                ErrorEvent(self.symbol, fill.ts, f"fill for unknown order {fill.client_id}: booked", kind="fill")
            )
        reason = reason or (flight.order.reason if flight is not None else "exit")
        index = self.view.seen + i + 1
        # the ledger's own reading (only zero is flat) serves a broker without a lot step
        flat = None if self._any_qty else self._flat(self.ledger.qty + fill.position_change)
        if self.journal is None:
            self.ledger.book(fill, i, index, reason, flat)
        else:
            recorded = status or (flight.status if flight is not None else _FILLED)
            filled = flight.filled if flight is not None else fill.qty
            with self.journal.transaction():
                self.journal.fill(
                    fill.client_id,
                    self.symbol,
                    fill.ts,
                    str(filled),
                    recorded,
                    side=fill.side.value,
                    qty=str(fill.qty),
                    price=str(fill.price),
                    commission=str(fill.commission),
                    fee_qty=str(fill.fee_qty),
                    trade_id=fill.trade_id,
                )
                self.ledger.book(fill, i, index, reason, flat)
                self._persist()
        if self.bus.listening:
            self.bus.emit(FillEvent(fill))
        if self.risk.tracks_account:
            last = float(self.view.close[self.view.offset + i]) if self.view.n else float(fill.price)
            qty = float(self.ledger.qty)
            self.risk.account.update(self.symbol, float(self.ledger.cash) + qty * last, abs(qty) * last)
        self._sync_position_view()
        self._guard(self.strategy.on_fill, fill.ts, fill)

    def _order_finished(self, flight: InFlight, ts: int, why: str) -> None:
        """The order in flight is done (filled, cancelled, rejected, expired, lost)."""
        self.order_expiry = None
        status = flight.status
        state, qty = self.sm.state, self.ledger.qty
        if state is _CLOSE_WATCH and not self._flat():
            order = flight.order
            if self.broker.supports_brackets and (order.stop_price is not None or order.take_profit_price is not None):
                self.bracket = order.client_id
            self._transition(
                _IN_TRADE,
                ts,
                "entry filled" if status is _FILLED else f"entry {status.value} after a partial fill",
            )
            self._arm_stops(ts)
        elif state is _CLOSE_WATCH:
            self.entry_levels = None
            detail = f": {why}" if why else ""
            self._transition(_WATCH, ts, f"order {flight.order.client_id} {status.value}{detail}")
        elif state is _IN_TRADE and self._flat():
            self.stops.clear()
            self._transition(_WATCH, ts, flight.order.reason)
        elif state is _IN_TRADE and status is not _FILLED:
            self.bus.emit(
                ErrorEvent(
                    self.symbol,
                    ts,
                    f"exit order {flight.order.client_id} {status.value} ({why}); position {qty} still open",
                    kind="order",
                )
            )
        else:
            self._settle_state(ts, f"order {flight.order.client_id} {status.value}")
        self._sync_position_view()
        self._persist()
        if self.halted is not None and self.cfg.on_error == "flatten" and self.ledger.qty != 0 and self.view.n:
            self._exit(self._i, "halt", None)

    def _settle_state(self, ts: int, reason: str) -> None:
        """With no order in flight, bring the state machine in line with the
        position a fill left (a late fill of an order given up)."""
        if self.orders.current is not None:
            return
        state = self.sm.state
        if not self._flat() and state is not State.IN_TRADE:
            if state is State.WATCH:
                self._transition(State.CLOSE_WATCH, ts, reason)
            self._transition(State.IN_TRADE, ts, reason)
            self._arm_stops(ts)
        elif self._flat() and state is State.IN_TRADE:
            self.stops.clear()
            self._transition(State.WATCH, ts, reason)

    def _arm_stops(self, ts: int) -> None:
        """A trade has begun: the config's stops from the entry price, or the
        levels the entry decision named, journaled."""
        entry, c = self.ledger.entry, self.cfg
        price = float(entry.price) if entry else 0.0
        self.stops.on_entry(price, self.ledger.qty > 0, c.stop_loss, c.take_profit, c.trailing_stop)
        if self.entry_levels is not None:
            self.stops.override(*self.entry_levels)
        self.entry_levels = None
        if self.journal is not None:
            self._journal_stops(entry.ts if entry else ts)

    def _flat(self, qty: Decimal | None = None) -> bool:
        """No position the venue could trade (the symbol's, or ``qty``): zero,
        or a remainder below its lot step. A venue that takes its fee in the
        asset bought leaves such dust after an exit; the trade is over, and
        the dust goes with the next exit."""
        if qty is None:
            qty = self.ledger.qty
        if qty == 0:
            return True
        return not self._any_qty and self.broker.round_qty(self.symbol, abs(qty)) <= 0

    def apply_state(self, order: Order, state: OrderState, i: int = 0) -> None:
        """Apply what the broker says of an order (after an unanswered send or
        a restart) as the updates it stands for: fills first, then its end."""
        cid, sym = order.client_id, order.symbol
        if state.venue_id or state.status is OrderStatus.ACCEPTED:
            self.on_update(OrderUpdate(UpdateKind.ACK, cid, sym, order.ts, venue_id=state.venue_id), i)
        for fill in state.fills:
            self.on_update(OrderUpdate(UpdateKind.PARTIAL_FILL, cid, sym, fill.ts, fill), i)
        kind = _TERMINAL_UPDATE.get(state.status)
        if kind is not None:
            self.on_update(OrderUpdate(kind, cid, sym, order.ts, reason="reported by the broker"), i)
        self._apply_leg_fills(order, state, i)

    def _apply_leg_fills(self, order: Order, state: OrderState, i: int = 0) -> None:
        """Book what the order's bracket legs filled (each fill once)."""
        for leg, fill in state.leg_fills:
            self.on_update(OrderUpdate(UpdateKind.FILL, order.client_id, order.symbol, fill.ts, fill, leg=leg), i)

    def order_lost(self, order: Order, why: str) -> None:
        """The broker has no such order: it never arrived (never resent)."""
        self.execution.record(order, OrderStatus.LOST, why)
        flight = self.orders.find(order.client_id)
        if flight is not None and flight is self.orders.current:
            self.orders.settle(OrderStatus.LOST)
            self.execution.order_closed()
            self._order_finished(flight, order.ts, why)

    # ------------------------------------------------------------ state, errors

    def _transition(self, to: State, ts: int, reason: str) -> None:
        if to is _WATCH:
            self.bracket = None
        event = self.sm.transition(to, ts, reason)
        if self.journal is not None:
            with self.journal.transaction():
                self.journal.event(
                    "transition", self.symbol, ts, frm=event.from_state.value, to=to.value, reason=reason
                )
                self._persist()
        if self.bus.listening:
            self.bus.emit(event)

    def _journal_stops(self, ts: int | None) -> None:
        if self.journal is not None and self.stops.active:
            self.journal.event("stops", self.symbol, ts, **self.stops.snapshot())

    def _guard(self, call: Any, ts: int, *args: Any) -> None:
        if self.halted is not None:
            return
        try:
            call(*args)
        except StrategyError as err:
            self.halt(str(err), ts)

    def halt(self, message: str, ts: int | None, flatten: bool = True) -> None:
        """Stop this symbol's strategy; cancel a working entry; flatten if the config says so."""
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
        if not self.view.n:
            return
        self._cancel_entry(self._i)
        if flatten and self.cfg.on_error == "flatten" and self.ledger.qty != 0 and self.orders.current is None:
            self._exit(self._i, "halt", None)

    def _sync_position_view(self) -> None:
        p, e, s = self.view.position, self.ledger.entry, self.stops
        p.qty = float(self.ledger.qty)
        if e is None:
            p.avg_price, p.entry_ts, p.entry_index = 0.0, 0, 0
        else:
            p.avg_price, p.entry_ts, p.entry_index = float(e.price), e.ts, e.index
        p.stop_price, p.take_profit_price, p.trailing_stop = s.stop_price, s.take_profit_price, s.trailing

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
                    raise ControlError(f"halted ({self.halted}); resume only undoes a pause")
                done = "resumed" if self.paused else "was not paused"
                self.paused = False
            elif name == "flatten":
                cur = self.orders.current
                if cur is not None and self.sm.state is not State.CLOSE_WATCH:
                    raise ControlError(f"exit order {cur.order.client_id} is already working")
                if cur is not None:  # an entry working: cancel it, then flatten what it filled
                    self._cancel(cur, max(self.view.n - 1, 0))
                if self._flat():
                    done = "already flat"
                    if self.sm.state is State.CLOSE_WATCH:
                        self.expiry = None
                        self._transition(State.WATCH, last or 0, "flatten command")
                        done = "already flat; the setup is cancelled"
                elif not self.view.n:
                    raise ControlError("no bar yet to price an order at")
                else:
                    self._exit(self.view.n - 1, "flatten", None)
                    cur = self.orders.current
                    if cur is None and not self._flat():
                        raise ControlError("the flatten order was not placed (see the error event)")
                    done = f"flatten order {cur.order.client_id} sent" if cur else "flattened"
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
        if self.journal is not None:  # what steered the symbol, for engine status and replays
            self.journal.event(
                "control", self.symbol, last or None, command=name, result=done, origin=request.command.origin
            )
        reply.set_result(done)  # a success is the command's answer (its reply), never an error event

    # ------------------------------------------------------------ journal

    def snapshot(self) -> dict[str, Any]:
        cur = self.orders.current
        return {
            "state": self.sm.state.value,
            **self.ledger.snapshot(),
            "pending": None if cur is None else cur.order.client_id,
            "pending_filled": "0" if cur is None else str(cur.filled),
            **self.stops.snapshot(),
            "entry_levels": self.entry_levels,
            "bracket": self.bracket,
            "expiry": self.expiry,
            "order_expiry": self.order_expiry,
            "halted": self.halted,
            "last_ts": self.last_ts,
            "bars": self.bars_done,
            "kill": self.kill.snapshot(),
            "strategy_state": self.strategy.state() if self.started else self._restored_state,
        }

    def _persist(self, soon: bool = False) -> None:
        if self.journal is not None:
            self.journal.save_symbol(self.symbol, self.snapshot(), soon=soon)

    def restore(self, snap: dict[str, Any] | None, unsettled: list[dict[str, Any]], fill_keys: set[str]) -> None:
        """Take up where a previous run of this engine left off: ``snap`` is
        the symbol's last snapshot, ``unsettled`` the journal's rows of orders
        still open or whose fills do not add up (``Journal.unsettled_orders``)."""
        if snap is not None:
            self.sm = StateMachine(self.symbol, State(snap["state"]))
            self.ledger.restore(snap, fill_keys)
            self.stops.restore(snap)
            levels = snap.get("entry_levels")
            self.entry_levels = None if levels is None else tuple(levels)  # type: ignore[assignment]
            self.bracket = snap.get("bracket")
            self.expiry, self.order_expiry = snap["expiry"], snap.get("order_expiry")
            self.halted, self.last_ts = snap["halted"], snap["last_ts"]
            self.view.seen = self.bars_done = snap["bars"]
            self.kill.restore(snap.get("kill", {}))
            self._restored_state = snap.get("strategy_state")
        else:
            self.ledger.fill_keys = set(fill_keys)
        pending = None if snap is None else snap.get("pending")
        open_rows = [r for r in unsettled if OrderStatus(r["status"]).is_open]
        current = next((r for r in open_rows if r["client_id"] == pending), None)
        if current is None and open_rows:
            current = open_rows[-1]  # journaled as sent, snapshot not yet written
        for row in unsettled:
            order = order_from_row(row)
            status, filled = OrderStatus(row["status"]), Decimal(row["filled_qty"])
            if row is current:
                self.orders.open(order, status, filled=filled)
            else:
                self.orders.remember(InFlight(order, status, filled, row.get("venue_id") or ""))
        self._sync_position_view()

    def reconcile(self, held: Decimal) -> None:
        """After ``restore``: ask the broker about every unsettled order, book
        the fills the journal missed, mark orders it never got as lost (never
        resent), then halt the symbol if its position still disagrees."""
        flights = list(self.orders.recent.values())
        if self.orders.current is not None:
            flights.append(self.orders.current)
        for flight in flights:
            order = flight.order
            state = self.execution.lookup(order.client_id)
            if state is None:
                if flight.status.is_open:
                    self.order_lost(order, "not at the broker after a restart; not resent")
                continue
            self.apply_state(order, state)
        self._reconcile_bracket(flights)
        # killed between booking a fill and the transition it causes
        self._settle_state(self.last_ts or 0, "restart: the state follows the booked position")
        if held != self.ledger.qty:
            self.halt(
                f"{self.symbol}: position mismatch after restart: the journal says {self.ledger.qty}, "
                f"the broker {held}; resolve it at the broker, then restart",
                self.last_ts,
            )

    def _reconcile_bracket(self, flights: list[InFlight]) -> None:
        """The entry whose legs protect the position at the venue: asked for
        (which registers its legs with the broker), and what a leg filled
        while the engine was down is booked: the position it closed is not
        exited again."""
        cid = self.bracket
        if cid is None or self.journal is None or any(f.order.client_id == cid for f in flights):
            return
        row = next((r for r in self.journal.orders(symbol=self.symbol) if r["client_id"] == cid), None)
        state = self.execution.lookup(cid) if row is not None else None
        if row is not None and state is not None:
            self._apply_leg_fills(order_from_row(row), state)

    # ------------------------------------------------------------ result

    def result(self) -> SymbolResult:
        ts, pnl, exposed = self.ledger.series()
        return SymbolResult(
            symbol=self.symbol,
            ts=ts,
            pnl=pnl,
            exposed=exposed,
            trades=list(self.ledger.trades),
            orders=self.orders_sent,
            fills=self.ledger.fills,
            final_state=self.sm.state.value,
            position_qty=self.ledger.qty,
            halted=self.halted,
            errors=list(self.errors),
            candles=self.candles,
        )
