"""Wires a validated config into a running engine and returns its result.

Backtest: the source's history is read on the calling thread and each chunk
is routed to its symbol's worker queue (bounded, so memory stays flat).
Live: the source runs on an asyncio I/O thread and routes each bar the same
way, and the workers take turns in arrival order (``baton.py``). Either
way each symbol's worker runs on its own thread, and Ctrl-C
stops cleanly: feeding stops, workers drain their queues, sinks flush.
"""

from __future__ import annotations

import gc
import heapq
import operator
import sys
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine_core import recovery
from engine_core.baton import Baton
from engine_core.brokers import Broker
from engine_core.config import LoadedConfig, journal_path, load_config
from engine_core.control import ENGINE, Command, ControlError, Request
from engine_core.errors import BrokerError, DataError, EngineError, error_text
from engine_core.events import EventBus
from engine_core.execution import ExecutionEngine
from engine_core.idle_gc import IdleCollector
from engine_core.journal import Journal
from engine_core.model import Bar, BarChunk, ConnectionEvent
from engine_core.orders import OpenOrder
from engine_core.plugins import Registry, get_registry
from engine_core.recording.paths import recording_enabled
from engine_core.results import RunResult, symbol_result
from engine_core.risk import Account, RiskManager
from engine_core.services import Service
from engine_core.sources import ConnectionState, DataSource
from engine_core.updates import Router
from engine_core.validate import refuse_venue_broker
from engine_core.worker import STOP, SymbolWorker, Warmup

if TYPE_CHECKING:
    import asyncio

    from engine_core.recording.writer import Recorder

INBOX_CHUNKS = 2  # backtest chunks queued per symbol before the reader waits


@dataclass
class Engine:
    """A configured engine, ready to run once. Building it has no side
    effects: the journal is opened, the broker connected and the account read
    by ``run``. A venue broker in a mode that runs only simulated brokers is
    refused here, before the broker is even built (``validate.venue_refusal``)."""

    loaded: LoadedConfig
    registry: Registry
    progress: Callable[[int], None] | None = None  # called with bars fed so far
    notice: Callable[[str], None] = field(default=lambda line: _say(line))
    """Where a live run says, before it connects, which venue and account it trades."""
    stop_event: threading.Event = field(default_factory=threading.Event)
    # replaces the feeding (engine_core.recording.replay: a recording's inputs, on this thread)
    feed: Callable[[Engine], None] | None = None

    def __post_init__(self) -> None:
        cfg = self.loaded.config
        self.stopped_by: str | None = None  # what stopped the run when it was not a signal (a control command)
        refuse_venue_broker(self.loaded, self.registry)
        self.symbols = list(cfg.engine.symbols)
        self.workers: dict[str, SymbolWorker] = {}
        self.source: DataSource = self.loaded.source_cls(
            self.loaded.source_config, symbols=self.symbols, base_dir=self.loaded.base_dir
        )
        self.broker: Broker = self.loaded.broker_cls(
            self.loaded.broker_config, on_update=Router(self.workers), symbols=self.symbols
        )
        self.host = self.loaded.host_cls(cfg.strategy, self.loaded.base_dir)
        sinks = [cls(c) for cls, c in self.loaded.sinks]
        self.recorder: Recorder | None = None
        if recording_enabled(cfg.engine):
            from engine_core.recording.writer import Recorder  # pyarrow: only for a run that records

            self.recorder = Recorder(self)
        for sink in sinks:
            sink.bind(cfg.engine.id, self.symbols, cfg.engine.mode)
        taps = [self.recorder.sink] if self.recorder is not None else []
        self.bus = EventBus(self.registry.pm, sinks, taps=taps)
        # what runs beside a live engine ([dashboard]); a backtest only validated their tables
        self.services: list[Service] = (
            [cls(c, name=name, loaded=self.loaded) for name, cls, c in self.loaded.services]
            if cfg.engine.mode == "live"
            else []
        )
        self.journal: Journal | None = None
        self._io_task: asyncio.Task[None] | None = None
        self.summary: dict[str, Any] | None = None
        self.lockstep = False
        self.baton: Baton | None = None  # live: the workers take turns (baton.py)
        self.collector: IdleCollector | None = None  # live: the garbage collector runs when idle (idle_gc.py)
        self._started: list[Service] = []

    def _on_connection(self, state: ConnectionState, detail: str) -> None:
        ts = self._journal_connection(state, detail)
        self.bus.emit(ConnectionEvent(self.loaded.config.source.type, state.value, ts, detail))

    def _journal_connection(self, state: ConnectionState, detail: str) -> int:
        ts = time.time_ns()
        if self.recorder is not None:
            self.recorder.connection(state.value, detail)
        if self.journal is not None:
            self.journal.event(
                "connection", None, ts, source=self.loaded.config.source.type, state=state.value, detail=detail
            )
        return ts

    def run(self) -> RunResult:
        cfg = self.loaded.config
        live = cfg.engine.mode == "live"
        if live and not self.source.has_live():
            raise EngineError(f'source.type: {cfg.source.type!r} has no live data; use mode = "backtest"')
        if not live and not self.source.has_history():
            raise EngineError(f'source.type: {cfg.source.type!r} has no history; use mode = "live"')
        self.host.load()
        use_journal = cfg.engine.journal if cfg.engine.journal is not None else live
        if use_journal:
            self.journal = Journal(
                journal_path(self.loaded.base_dir, cfg.engine), sync=cfg.engine.journal_sync, exclusive=True
            )
            self.broker.bind_journal(self.journal)
            self.journal.broker_in_journal = self.broker.in_journal  # its intents need not wait for the disk
        if self.recorder is not None:
            self.recorder.open()
        failure: BaseException | None = None
        result: RunResult | None = None
        self.bus.start()
        try:
            account = self.broker.describe_account() if live else None
            if account:
                self.notice(f"trading on {account}")
            risk = RiskManager(cfg.risk, Account(self._open_account()))
            execution = ExecutionEngine(
                cfg.engine.id, self.broker, self.bus, self.journal, risk, self.symbols, stopping=self.stop_event
            )
            for symbol in self.symbols:
                self.workers[symbol] = SymbolWorker(
                    symbol,
                    self.host,
                    cfg.strategy,
                    execution,
                    self.broker,
                    self.bus,
                    cfg.engine.window,
                    inbox_size=0 if live else INBOX_CHUNKS,
                    journal=self.journal,
                )
            if self.recorder is not None:
                self.recorder.tap_workers(self.workers)
            if type(self.source).entries_allowed is not DataSource.entries_allowed:
                for worker in self.workers.values():
                    worker.entries_allowed = self.source.entries_allowed
            if self.journal is not None:
                for symbol, worker in self.workers.items():  # what a step writes goes over together (journal.py)
                    self.journal.attach(symbol, worker)
                self._recover(self.journal)
            self.registry.pm.hook.engine_started(config=cfg, engine=self)
            for service in self.services:
                service.start(self)
                self._started.append(service)
            # cross-symbol rules that can refuse an order make the symbols' order of events matter
            self.lockstep = self.feed is not None or (
                not live and len(self.workers) > 1 and risk.cross_symbol_binds(self.symbols)
            )
            # What start-up built (modules, classes, plugins, the workers) lives
            # as long as the run: out of the collector's sight, a full
            # collection during the run walks only what the run made (tens of
            # milliseconds less each; given back to the collector at the end).
            gc.freeze()
            if live and not self.lockstep:  # one worker at a time processes a message, in arrival order (baton.py)
                self.collector = IdleCollector()  # the garbage collector runs between bursts (idle_gc.py)
                self.collector.start()
                self.baton = Baton(collector=self.collector)
                if self.bus.idlers:  # sinks publishing from threads of their own do it between bursts
                    self.baton.on_idle(self.bus.idle)
                if self.journal is not None:  # the journal's thread writes what steps held between bursts
                    self.journal.quiet = self.baton.idle
                    self.baton.on_idle(self.journal.idle)
                    # a venue's order leaves at its worker's turn once its intent is on disk: no step waits
                    execution.sends_later = not self.broker.in_journal and not self.broker.simulated
                    self.baton.expecting = self.journal.awaited  # its turn is on its way: no collection meanwhile
                for worker in self.workers.values():
                    worker.inbox = self.baton.gate(worker.inbox, worker.take)  # type: ignore[assignment]
            for worker in self.workers.values():
                if not self.lockstep:
                    worker.start()
            try:
                if self.feed is not None:
                    self.feed(self)
                elif live:
                    self._feed_live()
                else:
                    self._feed_history(self.source.history())
            except KeyboardInterrupt:
                self.stop_event.set()
            if self.journal is not None and self.journal.failed is not None:
                raise self.journal.failed  # nothing was journaled, nor sent, since: the run ends with it
            result = RunResult(
                strategy=self.host.name,
                mode=cfg.engine.mode,
                start_cash=risk.account.start_cash,
                symbols={},
                source_stats={},
                params=self.loaded.public_params(),
            )
        except BaseException as err:  # noqa: BLE001 - stop the workers, then re-raise
            failure = err
            self._journal_failure(err)
        finally:
            if live and failure is not None:
                self.stop_event.set()  # a run that failed is stopping too: nothing more is sent
            if live and self.stop_event.is_set():
                # nothing is sent after stop: held orders never, orders on the wire answered or unknown
                self.broker.stop_sending(cfg.engine.stop_timeout)
            self._stop_workers()
            if self.baton is not None:
                self.baton.close()
            if self.collector is not None:
                self.collector.stop()
            if live:  # the feed ended: what the workers' last bars left held back is not sent either
                self.broker.stop_sending(cfg.engine.stop_timeout)
            self._stop_services()
            gc.unfreeze()
            self.source.close()
            self.broker.close()
            self.bus.close()
            if self.recorder is not None:
                self.recorder.close()
            if self.journal is not None:
                if live:  # `engine status` no longer says "connected since" once the run is over
                    ended = "the engine stopped" if failure is None else "the run failed"
                    self._journal_connection(ConnectionState.STOPPED, ended)
                self.journal.close()
        if failure is not None:
            raise failure
        assert result is not None
        result.symbols = {s: symbol_result(w) for s, w in self.workers.items()}
        result.source_stats = self.source.stats()
        result.sink_stats = [
            {"type": section.type, **stats}
            for section, sink in zip(cfg.sinks, self.bus.sinks)
            if (stats := sink.stats())
        ]
        sinks = self.bus.report()
        if sinks:
            result.source_stats = {**result.source_stats, "sinks": sinks}
        from engine_core.report import summarize

        self.summary = summarize(result)
        self.registry.pm.hook.engine_stopped(summary=self.summary)
        return result

    def _open_account(self) -> Decimal:
        """Connect the broker and read its cash; a failure outside the broker
        contract (a venue's TimeoutError, a network error) is one line naming
        the broker and the call."""
        call = "connect"
        try:
            self.broker.connect()
            call = "starting_cash"
            return self.broker.starting_cash()
        except EngineError:
            raise
        except Exception as err:
            broker = self.loaded.config.broker.type
            raise BrokerError(f"broker {broker!r}: {call} failed: {error_text(err)}") from err

    def _stop_services(self) -> None:
        """Stop the services started, the last first; one that fails to stop is
        reported and the others still stop."""
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception as err:  # noqa: BLE001 - stopping the rest matters more
                print(f"{service.name}: failed to stop: {error_text(err)}", file=sys.stderr)

    def command(self, command: Command) -> dict[str, Future[str]]:
        """Route a control command (engine_core.control): ``stop`` sets the stop
        event; a symbol command goes to that symbol's worker (every worker when
        it names none), which answers through the returned futures."""
        if command.name == "stop":
            self.stopped_by = self.stopped_by or command.describe()
            self.stop_event.set()
            done: Future[str] = Future()
            done.set_result("stopping")
            return {ENGINE: done}
        if not self.workers:
            raise ControlError("the engine is not running yet")
        if command.symbol is not None and command.symbol not in self.workers:
            raise ControlError(f"symbol {command.symbol!r} is not run by this engine")
        targets = [command.symbol] if command.symbol is not None else list(self.workers)
        for symbol in targets:
            thread = self.workers[symbol].thread
            if thread is None or not thread.is_alive() or self.stop_event.is_set():
                raise ControlError(f"{symbol}: the engine is not running")
        replies: dict[str, Future[str]] = {}
        for symbol in targets:
            replies[symbol] = Future()
            self.workers[symbol].inbox.put(Request(command, replies[symbol]))
        return replies

    def _journal_failure(self, err: BaseException) -> None:
        """A run that failed says why in its journal, for ``engine status``."""
        if self.journal is None or not isinstance(err, EngineError):
            return
        try:
            self.journal.event("failed", None, time.time_ns(), error=str(err))
        except EngineError:
            pass  # the journal itself failed; the error is reported anyway

    def _recover(self, journal: Journal) -> None:
        """Restore each symbol from the journal, then reconcile with the broker
        before anything trades (``recovery.reconcile``): its positions, and
        the orders working at the venue, asked for once for every symbol."""
        snapshots = journal.symbols()
        positions = self.broker.positions()
        working: dict[str, list[OpenOrder]] = {}
        for found in self.broker.open_orders():
            working.setdefault(found.order.symbol, []).append(found)
        for symbol, worker in self.workers.items():
            recovery.restore(worker, snapshots.get(symbol), *journal.unsettled(symbol))
            recovery.reconcile(worker, positions.get(symbol, Decimal(0)), working.get(symbol, ()))
            cur = worker.orders.current
            journal.event(
                "recovered",
                symbol,
                worker.last_ts,
                state=worker.sm.state.value,
                qty=str(worker.ledger.qty),
                pending=None if cur is None else cur.order.client_id,
            )

    def _stop_workers(self) -> None:
        """Each worker processes what is queued, applies the broker updates
        that came meanwhile, and ends; updates after that are applied by the
        thread that delivers them (``SymbolWorker.deliver``)."""
        # a stop (Ctrl-C) can come while the workers start: one whose thread never ran is not joined
        started = [w for w in self.workers.values() if w.thread is not None and w.thread.ident is not None]
        for worker in started:
            worker.inbox.put(STOP)
        for worker in started:
            assert worker.thread is not None
            worker.thread.join()
        for worker in self.workers.values():
            if all(worker is not w for w in started):
                worker.done = True

    # ------------------------------------------------------------ feeding

    def _checked(self, chunks: Iterable[BarChunk]) -> Iterator[BarChunk]:
        """The source's chunks for configured symbols, checked for time order."""
        last_ts: dict[str, int] = {}
        for chunk in chunks:
            if self.stop_event.is_set():
                return
            if chunk.symbol not in self.workers or len(chunk) == 0:
                continue
            prev = last_ts.get(chunk.symbol)
            if prev is not None and int(chunk.ts[0]) <= prev:
                raise DataError(f"{chunk.symbol}: bars out of time order from the source at ts={int(chunk.ts[0])}")
            last_ts[chunk.symbol] = int(chunk.ts[-1])
            yield chunk

    def _feed_history(self, chunks: Iterable[BarChunk]) -> None:
        if self.lockstep:
            self._feed_in_time_order(self._checked(chunks))
            return
        size = self.loaded.config.engine.chunk
        fed = 0
        for chunk in self._checked(chunks):
            worker = self.workers[chunk.symbol]
            for start in range(0, len(chunk), size):
                part = chunk if len(chunk) <= size else chunk.slice(start, start + size)
                worker.inbox.put(part)
                fed += len(part)
                if self.progress is not None:
                    self.progress(fed)

    def _feed_in_time_order(self, chunks: Iterable[BarChunk]) -> None:
        """Cross-symbol risk rules read the other symbols' state, so a backtest
        that has them steps every symbol bar by bar in event-time order (ties
        in configured symbol order) on this thread: its result never depends
        on thread timing. Chunks come ordered by their first bar, so bars
        before the newest chunk's first bar can all be stepped."""
        rank = {s: k for k, s in enumerate(self.symbols)}
        pending: dict[str, deque[BarChunk]] = {s: deque() for s in self.workers}
        heap: list[tuple[int, int, str, int]] = []  # (ts, symbol rank, symbol, index in its first chunk)
        fed = 0

        def step_until(limit: int | None) -> None:
            nonlocal fed
            while heap and (limit is None or heap[0][0] < limit):
                _, r, symbol, i = heapq.heappop(heap)
                queue_ = pending[symbol]
                chunk = queue_[0]
                self.workers[symbol].handle(chunk.slice(i, i + 1))
                fed += 1
                if i + 1 < len(chunk):
                    heapq.heappush(heap, (int(chunk.ts[i + 1]), r, symbol, i + 1))
                else:
                    queue_.popleft()
                    if queue_:
                        heapq.heappush(heap, (int(queue_[0].ts[0]), r, symbol, 0))
                if self.progress is not None and fed % 4096 == 0:
                    self.progress(fed)

        for chunk in chunks:
            step_until(int(chunk.ts[0]))
            queue_ = pending[chunk.symbol]
            queue_.append(chunk)
            if len(queue_) == 1:
                heapq.heappush(heap, (int(chunk.ts[0]), rank[chunk.symbol], chunk.symbol, 0))
        step_until(None)
        if self.progress is not None:
            self.progress(fed)

    def _feed_live(self) -> None:
        errors: list[BaseException] = []
        import asyncio  # live only: a backtest imports neither asyncio nor ssl

        loop = asyncio.new_event_loop()
        self.source.bind_connection(self._on_connection)

        async def pump() -> None:
            for symbol, worker in self.workers.items():
                chunk = await self.source.warmup(symbol, self.loaded.config.engine.window)
                if chunk is not None and len(chunk):
                    worker.inbox.put(Warmup(chunk))
            bars = self.source.live()
            assert isinstance(bars, AsyncGenerator), "DataSource.live() must be an async generator"
            source = self.loaded.config.source.type
            try:
                async for bar in bars:
                    if bar.__class__ is not Bar or bar.ts.__class__ is not int:
                        bar = _contract_bar(bar, source)
                    target = self.workers.get(bar.symbol)
                    if target is not None:
                        target.inbox.put(bar)
                    if self.stop_event.is_set():
                        return
            finally:
                await bars.aclose()

        async def main() -> None:
            try:
                await pump()
            finally:
                await self.source.aclose()

        def io_thread() -> None:
            try:
                self._io_task = loop.create_task(main())
                loop.run_until_complete(self._io_task)
            except asyncio.CancelledError:
                pass
            except BaseException as err:  # noqa: BLE001 - reported on the main thread
                errors.append(err)
            finally:
                _drain(loop)
                loop.close()

        self._io_task = None
        thread = threading.Thread(target=io_thread, name="io", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.2)
                if self.stop_event.is_set() or (self.journal is not None and self.journal.failed is not None):
                    break
        except KeyboardInterrupt:
            self.stop_event.set()
        if thread.is_alive():
            task = self._io_task
            if task is not None:
                loop.call_soon_threadsafe(task.cancel)
            thread.join(10)
        if errors:
            err = errors[0]
            if isinstance(err, EngineError):
                raise err
            raise EngineError(f"data source {self.loaded.config.source.type!r} failed: {error_text(err)}") from err


def _contract_bar(bar: Any, source: str) -> Bar:
    """A live bar as the contract has it (a ``Bar``, its ``ts`` an int of
    nanoseconds): an integer of another type (numpy's, from a DataFrame) is
    taken as its int; anything else stops the run naming the source, the
    symbol and what it gave."""
    if not isinstance(bar, Bar):
        raise EngineError(f"data source {source!r}: live() yielded a {type(bar).__name__}, not an engine_core.Bar")
    try:
        ts = operator.index(bar.ts)
    except TypeError:
        raise EngineError(
            f"data source {source!r}: a live bar of {bar.symbol}: ts is a {type(bar.ts).__name__} ({bar.ts}), "
            "not an int of nanoseconds since the epoch (UTC)"
        ) from None
    return replace(bar, ts=ts)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    import asyncio

    """Cancel and await what a source left running, and close async
    generators, so that nothing is destroyed pending when the loop closes."""
    try:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    except RuntimeError:  # the loop was stopped from outside
        pass


def build_engine(path: str | Path, registry: Registry | None = None, shard: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the config at ``path``; ``shard`` ("K/N") overrides ``engine.shard``."""
    registry = registry or get_registry()
    return Engine(load_config(path, registry, shard=shard), registry, **kwargs)


def run(path: str | Path, registry: Registry | None = None) -> RunResult:
    """Load ``path``, run it to the end, and return the result (no report written)."""
    return build_engine(path, registry).run()


__all__ = ["Engine", "build_engine", "run"]
