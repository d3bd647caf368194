"""One symbol's worker: its thread and inbox, the stepping through bars,
and the calls to its strategy.

Bars come in chunks (one bar live, many in a backtest), broker updates and
control commands between them. Each bar, in order: a simulated broker's
order in flight is matched against it and a lapsed entry limit cancelled;
in a trade, stops and kill switches are checked against its range
(vectorised over the chunk, so the strategy is asked only about the bars
before the first hit); then the strategy's function for the state decides
on its close. An order in flight does not freeze the symbol. What the rest
does lives in its own module: decisions.py, exits.py, updates.py,
transitions.py, halts.py, recovery.py, symbol_control.py (ARCHITECTURE.md).
"""

from __future__ import annotations

import functools
import queue
import threading
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from engine_core import decisions, exits, halts, matching, recovery, symbol_control, transitions, updates
from engine_core.baton import Gate
from engine_core.brokers import Broker, SimulatedBroker
from engine_core.candles import Candles
from engine_core.config import StrategySection
from engine_core.control import Request
from engine_core.errors import EngineError, StrategyError, error_text
from engine_core.events import EventBus
from engine_core.execution import ExecutionEngine
from engine_core.journal import Journal
from engine_core.ledger import Ledger
from engine_core.model import Bar, BarChunk, State
from engine_core.orders import OrderTracker, OrderUpdate
from engine_core.risk import KillSwitch
from engine_core.statemachine import StateMachine
from engine_core.stops import Stops
from engine_core.storage import BarWindow
from engine_core.strategy import Decision, StrategyHost, SymbolView
from engine_core.strategy_log import StrategyLog

STOP = object()  # put in a worker's inbox to end it after what is queued


class Warmup(NamedTuple):
    """History fed through indicators and strategy before the first live bar, without trading."""

    chunk: BarChunk


# Read once: on Python 3.11 each ``State.X`` goes through the enum metaclass (~0.2 us).
_CLOSE_WATCH, _IN_TRADE = State.CLOSE_WATCH, State.IN_TRADE


class SymbolWorker:
    # slots: a live bar finds the worker cold in the caches (ARCHITECTURE.md, hot paths)
    __slots__ = tuple(
        "_i bars_done bracket broker bus candles cfg config_stops done entries_allowed entry_levels errors"
        " execution expiry fill_next_open halted inbox journal kill last_ts ledger lock order_expiry orders"
        " orders_sent paused reloads restored_state risk running sim simulating sm start_cash started stops"
        " store strategy symbol thread view window".split()
    )

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
        # read once: a field read of a pydantic model from compiled code goes through its __getattr__
        self.config_stops = (strategy.stop_loss, strategy.take_profit, strategy.trailing_stop)  # fractions, or None
        self.reloads = strategy.reload
        self.execution = execution
        self.broker = broker
        self.sim: SimulatedBroker | None = broker if isinstance(broker, SimulatedBroker) else None
        self.fill_next_open = self.sim is not None and self.sim.fill_at == "next_open"
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
        self.running = 0  # the thread processing a message from the inbox (``take``), if any
        self.done = False  # the thread has ended; late updates are applied by the caller

        # a broker that trades any quantity (no lot step): only zero is flat
        lot = None if type(broker).round_qty is Broker.round_qty else functools.partial(broker.round_qty, symbol)
        live = journal is not None or self.sim is None  # (a backtest journals only when asked to)
        self.ledger = Ledger(symbol, keep_fill_keys=live, lot=lot, spill=live)
        self.orders = OrderTracker()
        self.stops = Stops()
        self.risk = execution.risk
        self.kill = KillSwitch(symbol, self.risk)
        self.candles = Candles()  # the bars as candlesticks, for the report
        self.start_cash = float(self.risk.account.start_cash)
        self.entry_levels: tuple[float | None, float | None, float | None] | None = None  # the entry's decision stops
        self.bracket: str | None = None  # the entry whose bracket legs guard the position (a restart asks for it)
        self.expiry: int | None = None  # absolute bar index at which a setup lapses
        self.order_expiry: int | None = None  # absolute bar index at which a working entry limit is cancelled
        self.halted: str | None = None
        self.paused = False  # by a control command: the strategy is not asked, stops still act
        self.started = False
        self.last_ts: int | None = None  # the last bar processed (a restart resumes after it)
        self.bars_done = 0  # bars processed up to last_ts
        self.errors: list[str] = []
        self.orders_sent = 0
        self.restored_state: Any = None  # ctx.state from the journal, put back after init
        self.entries_allowed: Callable[[str, int], bool] | None = None  # the source's, when it has sessions
        self._i = 0  # chunk-relative index of the bar being processed
        self.simulating = (0, 0)  # the thread in a simulated broker's call, and its chunk bar (``deliver``)

    # ------------------------------------------------------------ threading

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name=f"worker-{self.symbol}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        if isinstance(self.inbox, Gate):  # live: the threads run the workers' turns, any worker's (baton.py)
            self.inbox.serve()
            return
        while self.take(self.inbox.get()):
            pass

    def take(self, msg: Any) -> bool:
        """One inbox message, on the calling thread (live: the baton's, this turn); False once STOP."""
        if msg is STOP:
            self._finish()
            return False
        with self.lock:
            self.running = threading.get_ident()
            try:
                flight = self.orders.current
                if flight is not None and flight.unsent and type(msg) is not decisions.Send:
                    self.handle(decisions.sent_first(self))  # the order leaves before what came after it
                self.handle(msg)
            finally:
                self.running = 0
        return True

    def handle(self, msg: Any) -> None:
        """Process one inbox message; an error halts this symbol only."""
        try:
            if type(msg) is BarChunk or type(msg) is Bar:
                self.process(msg)
            elif type(msg) is OrderUpdate:
                updates.apply(self, msg, self._i)
            elif type(msg) is decisions.Send:
                decisions.send(self, msg.order)
            elif type(msg) is Warmup:
                self.warm(msg.chunk)
            elif type(msg) is Request:
                symbol_control.act(self, msg)
        except EngineError as err:
            halts.halt(self, str(err), None)
        except Exception as err:  # a bug: keep the engine alive, say so loudly
            tb = traceback.format_exc(limit=5)
            halts.halt(self, halts.internal_error(self, msg, err, error_text(err)), None)
            self.errors.append(tb)

    def deliver(self, update: OrderUpdate) -> None:
        """A broker update for this symbol, from any thread; never blocks on the
        worker (a broker may report from inside ``submit``). A simulated broker's
        report from inside the worker's own call (``_simulate``) is applied at
        once, at that bar; after the worker has ended, here: no fill is dropped."""
        thread, at = self.simulating
        if thread == threading.get_ident():
            updates.apply(self, update, at)
            return
        self.inbox.put(update)
        if self.done:
            self._apply_queued_updates()

    def _finish(self) -> None:
        """STOP: the order waiting for its intent's sync is sent (or lost when
        the engine stops), the broker updates queued are applied (bars are left)."""
        if self.orders.current is not None and self.orders.current.unsent:
            self.take(decisions.sent_first(self))
        self.done = True
        self._apply_queued_updates()

    def _apply_queued_updates(self) -> None:
        with self.lock:
            self.running = threading.get_ident()  # a step: what it journals is held in order (journal.py)
            while True:
                try:
                    msg = self.inbox.get_nowait()
                except queue.Empty:
                    self.running = 0
                    return
                if type(msg) is OrderUpdate:
                    self.handle(msg)

    # ------------------------------------------------------------ chunks

    def _accept(self, chunk: BarChunk) -> BarChunk:
        """``chunk`` after the last bar processed (a restart or a warm-up overlapping it)."""
        if self.last_ts is None:
            return chunk
        if len(chunk) and int(chunk.ts[0]) <= self.last_ts:
            chunk = chunk.slice(int(np.searchsorted(chunk.ts, self.last_ts, "right")), len(chunk))
        return chunk

    def _load(self, bars: BarChunk | Bar) -> None:
        self.view.show(self.store, bars)
        self.view.position.sync(self.ledger, self.stops)
        if not self.started:
            self.started = True
            self._guard(self.strategy.init, int(bars.ts) if isinstance(bars, Bar) else int(bars.ts[0]))
            if self.restored_state is not None:  # a restart: ctx.state continues where it was
                self.strategy.restore_state(self.restored_state)
                self.restored_state = None

    def process(self, bars: BarChunk | Bar) -> None:
        """Step through a chunk of bars, or one bar that came live (a Bar: its
        values are read from it, as numbers, and no chunk is made of it)."""
        if isinstance(bars, Bar):  # one bar, unless processed before (a restart, or a warm-up overlapping it)
            n = 1 if self.last_ts is None or bars.ts > self.last_ts else 0
        else:
            bars = self._accept(bars)
            n = len(bars)
        if n == 0:
            return
        self._load(bars)
        if self.bus.wants_bars:
            for k in range(n):
                self.bus.emit(bars if isinstance(bars, Bar) else bars.bar(k))
        self.ledger.begin_chunk()
        i = 0
        while i < n:
            self._i = i
            i = self._step(i, n)
        pnl = self.ledger.mark_chunk(bars)
        if isinstance(bars, Bar):
            last_ts, close = int(bars.ts), float(bars.close)
            self.candles.bar(last_ts, float(bars.open), float(bars.high), float(bars.low), close)
        else:
            self.candles.add(bars.ts, bars.open, bars.high, bars.low, bars.close)
            last_ts, close = int(bars.ts[-1]), float(bars.close[-1])
        if self.risk.tracks_account:
            qty = float(self.ledger.qty)
            self.risk.account.update(self.symbol, pnl, abs(qty * close))
        self._i = 0
        self.last_ts = last_ts
        self.bars_done += n
        recovery.persist(self, soon=True)  # only the bar's progress: committed with the other symbols' shortly
        if self.halted is None and self.reloads:
            symbol_control.reload_if_changed(self, last_ts)

    def warm(self, chunk: BarChunk) -> None:
        """History through the indicators and the strategy without trading (decisions dropped,
        nothing booked). After a restart the bars may overlap what the journal counted; they
        only rebuild the indicators (the position comes from the journal)."""
        if len(chunk) == 0 or self.view.n:
            return  # warm-up only comes before the first bar
        counted = self.bars_done
        self.view.seen = max(0, counted - len(chunk))
        self._load(chunk)
        n, i = len(chunk), 0
        self.strategy.warming = True
        while i < n and self.halted is None:
            k, _ = self._scan(self.sm.state, i, n)
            if k is None:
                break
            i = k + 1
        self.strategy.warming = False
        self.last_ts = max(self.last_ts or int(chunk.ts[-1]), int(chunk.ts[-1]))
        self.bars_done = max(counted, self.view.seen + n)

    def _step(self, i: int, n: int) -> int:
        v, o = self.view, self.view.offset
        if self.orders.current is not None:
            matching.work_order(self, i)
        end = i + 1 if self.orders.current is not None and self.sim is not None else n  # a simulated order: each bar
        if self.halted is not None:
            return end
        state = self.sm.state
        due = exits.first(self, i, end)  # a stop or a kill switch: the strategy is asked about the bars before it
        stop = end if due is None else due[0]
        if state is _CLOSE_WATCH and self.expiry is not None:
            lapse = self.expiry - v.seen
            if lapse <= i:
                self.expiry = None
                transitions.move(self, State.WATCH, int(v.ts[o + i]), "setup expired")
                return i
            stop = min(stop, lapse)
        k, decision = self._scan(state, i, stop)
        if k is None:  # the strategy failed and the symbol halted
            return i + 1
        if self.stops.trailing is not None and state is _IN_TRADE:  # (no slicing when nothing trails)
            self.stops.advance_best(
                v.high[o + i : o + min(k + 1, stop)], v.low[o + i : o + min(k + 1, stop)], self.ledger.qty > 0
            )
        if decision is None:
            if due is not None and k == due[0]:
                return exits.take(self, i, due)
            exits.consume_kill(self, i, stop)
            return stop
        exits.consume_kill(self, i, k + 1)
        decisions.apply(self, state, decision, k)
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
            halts.halt(self, str(err), ts)
            return None, None

    # ------------------------------------------------------------ state, errors, journal

    def _guard(self, call: Any, ts: int, *args: Any) -> None:
        if self.halted is not None:
            return
        try:
            call(*args)
        except StrategyError as err:
            halts.halt(self, str(err), ts)

    def snapshot(self) -> dict[str, Any]:
        return recovery.snapshot(self)
