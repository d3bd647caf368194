"""Wires a validated config into a running engine and returns its result.

Backtest: the source's history is read on the calling thread and each chunk
is routed to its symbol's worker queue (bounded, so memory stays flat).
Live: the source runs on an asyncio I/O thread and routes each bar the same
way. Either way each symbol's worker runs on its own thread, and Ctrl-C
stops cleanly: feeding stops, workers drain their queues, sinks flush.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine_core.brokers import Broker
from engine_core.config import LoadedConfig, load_config
from engine_core.control import ENGINE, Command, ControlError, Request
from engine_core.errors import DataError, EngineError
from engine_core.events import EventBus
from engine_core.execution import ExecutionEngine
from engine_core.journal import OPEN_STATUSES, Journal
from engine_core.model import BarChunk, Fill, Order, Side
from engine_core.plugins import Registry, get_registry
from engine_core.results import RunResult
from engine_core.risk import Account, RiskManager
from engine_core.sources import DataSource
from engine_core.worker import STOP, SymbolWorker

INBOX_CHUNKS = 2  # backtest chunks queued per symbol before the reader waits


@dataclass
class Engine:
    """A configured engine, ready to run once."""

    loaded: LoadedConfig
    registry: Registry
    progress: Callable[[int], None] | None = None  # called with bars fed so far
    stop_event: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        cfg = self.loaded.config
        self.symbols = list(cfg.engine.symbols)
        self.workers: dict[str, SymbolWorker] = {}
        self.source: DataSource = self.loaded.source_cls(
            self.loaded.source_config, symbols=self.symbols, base_dir=self.loaded.base_dir
        )
        self.broker: Broker = self.loaded.broker_cls(self.loaded.broker_config, on_fill=self._route_fill)
        self.host = self.loaded.host_cls(cfg.strategy, self.loaded.base_dir)
        sinks = [cls(c) for cls, c in self.loaded.sinks]
        for sink in sinks:
            sink.bind(cfg.engine.id, self.symbols, cfg.engine.mode)
        self.bus = EventBus(self.registry.pm, sinks)
        use_journal = cfg.engine.journal if cfg.engine.journal is not None else cfg.engine.mode == "live"
        self.journal = Journal(journal_path(self.loaded), sync=cfg.engine.journal_sync) if use_journal else None
        if self.journal is not None:
            self.broker.bind_journal(self.journal)
        self.risk = RiskManager(cfg.risk, Account(self.broker.starting_cash()))
        self.execution = ExecutionEngine(cfg.engine.id, self.broker, self.bus, self.journal, self.risk)

    def _route_fill(self, fill: Fill) -> None:
        worker = self.workers.get(fill.symbol)
        if worker is not None:
            worker.inbox.put(fill)

    def run(self) -> RunResult:
        cfg = self.loaded.config
        self.host.load()
        live = cfg.engine.mode == "live"
        for symbol in self.symbols:
            self.workers[symbol] = SymbolWorker(
                symbol,
                self.host,
                cfg.strategy,
                self.execution,
                self.broker,
                self.bus,
                cfg.engine.window,
                inbox_size=0 if live else INBOX_CHUNKS,
                journal=self.journal,
            )
        self.bus.start()
        self.broker.connect()
        if self.journal is not None:
            self._recover(self.journal)
        self.registry.pm.hook.engine_started(config=cfg, engine=self)
        for worker in self.workers.values():
            worker.start()
        failure: BaseException | None = None
        try:
            if live:
                self._feed_live()
            else:
                self._feed_history(self.source.history())
        except KeyboardInterrupt:
            self.stop_event.set()
        except BaseException as err:  # noqa: BLE001 - stop the workers, then re-raise
            failure = err
        finally:
            self._stop_workers()
            self.source.close()
            self.broker.close()
            self.bus.close()
            if self.journal is not None:
                self.journal.close()
        if failure is not None:
            raise failure
        return RunResult(
            strategy=self.host.name,
            mode=cfg.engine.mode,
            start_cash=self.broker.starting_cash(),
            symbols={s: w.result() for s, w in self.workers.items()},
            source_stats=self.source.stats(),
            sink_stats=[
                {"type": section.type, **stats}
                for section, sink in zip(cfg.sinks, self.bus.sinks)
                if (stats := sink.stats())
            ],
            params=self.loaded.public_params(),
        )

    def command(self, command: Command) -> dict[str, Future[str]]:
        """Route a control command (engine_core.control): ``stop`` sets the stop
        event; a symbol command goes to that symbol's worker (every worker when
        it names none), which answers through the returned futures."""
        if command.name == "stop":
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

    def _recover(self, journal: Journal) -> None:
        """Restore each symbol from the journal, then reconcile with the broker
        before anything trades: orders the broker never got are marked lost
        (never resent), fills it made that the journal missed are booked, and
        a position that still disagrees halts that symbol."""
        snapshots = journal.symbols()
        positions = self.broker.positions()
        for symbol, worker in self.workers.items():
            rows = journal.orders(symbol, OPEN_STATUSES)
            orders = [
                Order(r["client_id"], symbol, Side(r["side"]), Decimal(r["qty"]), r["created_ts"], r["reason"])
                for r in rows
            ]
            fills = {f"{e['client_id']}/{e.get('trade_id', '')}" for e in journal.events(symbol, kind="fill")}
            if symbol in snapshots:
                worker.restore(snapshots[symbol], orders, fills)
            for order in orders:
                status = self.execution.lookup(order.client_id)
                if status is None:
                    journal.order(order, "lost", detail="not at the broker after a restart; not resent")
                    if worker.pending is not None and worker.pending.client_id == order.client_id:
                        worker._order_gone(f"order {order.client_id} never reached the broker")
                    continue
                if status.status == "open":
                    journal.order(order, "acknowledged")
                worker.book_status(order.client_id, status)
            held = positions.get(symbol, Decimal(0))
            if held != worker.qty:
                worker.halt(
                    f"{symbol}: position mismatch after restart: the journal says {worker.qty}, "
                    f"the broker {held}; resolve it at the broker, then restart",
                    worker.last_ts,
                )
            journal.event(
                "recovered",
                symbol,
                worker.last_ts,
                state=worker.sm.state.value,
                qty=str(worker.qty),
                pending=worker.pending.client_id if worker.pending else None,
            )

    def _stop_workers(self) -> None:
        for worker in self.workers.values():
            worker.inbox.put(STOP)
        for worker in self.workers.values():
            if worker.thread is not None:
                worker.thread.join()

    # ------------------------------------------------------------ feeding

    def _feed_history(self, chunks: Iterable[BarChunk]) -> None:
        size = self.loaded.config.engine.chunk
        fed = 0
        last_ts: dict[str, int] = {}
        for chunk in chunks:
            if self.stop_event.is_set():
                break
            worker = self.workers.get(chunk.symbol)
            if worker is None or len(chunk) == 0:
                continue
            prev = last_ts.get(chunk.symbol)
            if prev is not None and int(chunk.ts[0]) <= prev:
                raise DataError(f"{chunk.symbol}: bars out of time order from the source at ts={int(chunk.ts[0])}")
            last_ts[chunk.symbol] = int(chunk.ts[-1])
            for start in range(0, len(chunk), size):
                part = chunk if len(chunk) <= size else chunk.slice(start, start + size)
                worker.inbox.put(part)
                fed += len(part)
                if self.progress is not None:
                    self.progress(fed)

    def _feed_live(self) -> None:
        errors: list[BaseException] = []
        loop = asyncio.new_event_loop()

        async def pump() -> None:
            async for bar in self.source.live():
                worker = self.workers.get(bar.symbol)
                if worker is not None:
                    worker.inbox.put(bar)
                if self.stop_event.is_set():
                    return

        def io_thread() -> None:
            try:
                loop.run_until_complete(pump())
            except asyncio.CancelledError:
                pass
            except BaseException as err:  # noqa: BLE001 - reported on the main thread
                errors.append(err)
            finally:
                loop.close()

        thread = threading.Thread(target=io_thread, name="io", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                thread.join(0.2)
                if self.stop_event.is_set():
                    break
        except KeyboardInterrupt:
            self.stop_event.set()
        if thread.is_alive():
            loop.call_soon_threadsafe(lambda: [t.cancel() for t in asyncio.all_tasks(loop)])
            thread.join(5)
        if errors:
            err = errors[0]
            if isinstance(err, EngineError):
                raise err
            raise EngineError(
                f"data source {self.loaded.config.source.type!r} failed: {type(err).__name__}: {err}"
            ) from err


def journal_path(loaded: LoadedConfig) -> Path:
    cfg = loaded.config.engine
    return loaded.base_dir / cfg.state_dir / f"{cfg.id}.sqlite"


def build_engine(path: str | Path, registry: Registry | None = None, shard: str | None = None, **kwargs: Any) -> Engine:
    """An engine for the config at ``path``; ``shard`` ("K/N") overrides ``engine.shard``."""
    registry = registry or get_registry()
    return Engine(load_config(path, registry, shard=shard), registry, **kwargs)


def run(path: str | Path, registry: Registry | None = None) -> RunResult:
    """Load ``path``, run it to the end, and return the result (no report written)."""
    return build_engine(path, registry).run()


__all__ = ["Engine", "build_engine", "run"]
