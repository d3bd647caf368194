"""Recording a live run: taps where things enter the engine, and the thread
that writes them.

The live path only appends a tuple to a deque (``Recorder.put``); a thread
of the recorder's own turns what accumulated into one Arrow record batch
each second, appends it to the segment's stream and fsyncs it; once the
engine's burst of bars is over, when the engine says so (``idle``), so that
the batch's work never holds a burst back. A crash loses at most the last
two seconds; what was written before stays readable.

Taps (``Recorder.open`` and ``tap_workers``, called by the runner):

* each worker's inbox: every bar, warm-up, broker update, control command
  and stop, recorded as it is put, under a lock per symbol so the recorded
  order is the order the worker takes them in;
* a venue broker's answers (``starting_cash``, ``positions``, ``submit``,
  ``cancel``, ``order_status``, ``open_orders``, ``round_qty``), and a
  source's ``entries_allowed``: a replay gives the engine the same answers;
* the event bus: an ``inline`` sink takes the event log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from engine_core.control import Request
from engine_core.errors import StrategyError, error_text
from engine_core.events import EventSink, describe
from engine_core.model import NS_PER_DAY, Bar, ConnectionEvent
from engine_core.orders import OrderState, OrderUpdate
from engine_core.recording.format import (
    SCHEMA,
    VERSION,
    Row,
    bar_row,
    chunk_blob,
    fill_json,
    open_order_json,
    update_json,
)
from engine_core.recording.paths import recordings_dir
from engine_core.worker import STOP, Warmup

if TYPE_CHECKING:
    from engine_core.runner import Engine
    from engine_core.worker import SymbolWorker

log = logging.getLogger("engine_core.recording")
FLUSH_EVERY = 1.0  # seconds between two writes (what a crash can lose)
_COMPRESSION = pa.ipc.IpcWriteOptions(compression="zstd")
_NO_PRICES = (None, None, None, None, None)
BROKER_CALLS = ("starting_cash", "positions", "submit", "cancel", "order_status", "open_orders", "round_qty")


def event_symbol(event: Any) -> str:
    """The symbol an event belongs to in the event log ("-" for the engine's own)."""
    inner = getattr(event, "order", None) or getattr(event, "fill", None)
    symbol = getattr(inner if inner is not None else event, "symbol", None)
    return symbol or "-"


def order_terms(order: Any) -> str:
    """What makes an order the same order (a what-if's order under a recorded client id may not be)."""
    prices = f"{order.price} {order.stop_price} {order.take_profit_price}"
    return f"{order.side._value_} {order.qty} {order.type._value_} {prices}"


def state_json(state: OrderState | None) -> Any:
    if state is None:
        return None
    return [state.status.value, str(state.filled_qty), [fill_json(f) for f in state.fills], state.venue_id]


class _EventTap(EventSink):
    """The recorder's view of the event bus: each event, taken on the emitting
    thread; its symbol and line are found on the recorder's thread when the
    batch is written (events are immutable values)."""

    inline = True

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(None)
        self.recorder = recorder
        self._queue = recorder._queue  # (``Recorder.put``, inline: an order makes about seven events)

    def handle(self, event: Any) -> None:
        if type(event) is ConnectionEvent:
            return  # wall-clock time: recorded as an input instead
        self._queue.append(("event", None, time.time_ns(), None, None, None, None, None, None, event, None))

    def idle(self) -> None:
        self.recorder.idle()


class RecordingInbox:
    """A worker's inbox that records each message as it is put (see the module docstring)."""

    def __init__(self, symbol: str, inner: Any, recorder: Recorder) -> None:
        self.symbol = symbol
        self.inner = inner
        self.recorder = recorder
        self.lock = threading.Lock()
        self.get = inner.get
        self.get_nowait = inner.get_nowait

    def put(self, msg: Any) -> None:
        with self.lock:
            self.recorder.inbox(self.symbol, msg)
            self.inner.put(msg)

    def qsize(self) -> int:
        return int(self.inner.qsize())

    def empty(self) -> bool:
        return bool(self.inner.empty())


class Recorder:
    """Writes one engine's recording (see ``format.py``). Building it has no
    side effects; ``open`` starts the segment and the writer thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        loaded = engine.loaded
        self.directory = recordings_dir(loaded.base_dir, loaded.config.engine)
        self._queue: deque[Row] = deque()
        self.sink = _EventTap(self)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._quiet = threading.Event()  # set when the engine says a burst is over (idle)
        self._told = False  # the engine says so
        self._file: Any = None
        self._writer: pa.RecordBatchStreamWriter | None = None
        self._day = 0
        self._header: dict[str, Any] = {}
        self._scripts: dict[str, tuple[str, str]] = {}  # hash -> (path, text)
        self.path: Path | None = None
        self.bytes_written = 0
        self.failed: str | None = None

    # ------------------------------------------------------------ live path

    def put(self, row: Row) -> None:
        self._queue.append(row)

    def inbox(self, symbol: str, msg: Any) -> None:
        now = time.time_ns()
        kind = type(msg)
        if kind is Bar:
            self._queue.append(bar_row(msg, now))
        elif kind is OrderUpdate:
            self._queue.append(("update", symbol, now, msg.ts, None, None, None, None, None, update_json(msg), None))
        elif kind is Warmup:
            blob = chunk_blob(msg.chunk)
            self._queue.append(("warmup", symbol, now, None, None, None, None, None, None, None, blob))
        elif kind is Request:
            data = json.dumps(dataclasses.asdict(msg.command))
            self._queue.append(("command", symbol, now, None, None, None, None, None, None, data, None))
        elif msg is STOP:
            self._queue.append(("stop", symbol, now, None, None, None, None, None, None, None, None))

    def connection(self, state: str, detail: str) -> None:
        data = json.dumps({"state": state, "detail": detail})
        self._queue.append(("connection", None, time.time_ns(), None, None, None, None, None, None, data, None))

    def call(
        self,
        symbol: str | None,
        method: str,
        key: Any,
        result: Any = None,
        error: BaseException | None = None,
        order: str | None = None,
    ) -> None:
        d: dict[str, Any] = {"m": method, "k": key}
        if order is not None:
            d["o"] = order
        if error is not None:
            d["e"] = [type(error).__name__, str(error)]
        else:
            d["r"] = result
        self._queue.append(("call", symbol, time.time_ns(), None, None, None, None, None, None, json.dumps(d), None))

    # ------------------------------------------------------------ taps

    def open(self) -> None:
        """Start the segment (header, journal image, script) and tap the broker
        and the source. Called once the journal is open, before the broker connects."""
        engine = self.engine
        loaded = engine.loaded
        cfg = loaded.config
        broker = engine.broker
        script = self._script()
        self._header = {
            "version": VERSION,
            "engine_id": cfg.engine.id,
            "symbols": list(engine.symbols),
            "config_path": str(loaded.path.resolve()),
            "config": _text(loaded.path),
            "source": cfg.source.type,
            "broker": cfg.broker.type,
            "broker_simulated": bool(broker.simulated),
            "lot_step": type(broker).round_qty is not _base_round_qty(),
            "brackets": bool(type(broker).supports_brackets),
            "sessions": _has_sessions(engine),
            "script_hash": script[0] if script else None,
            "pid": os.getpid(),
        }
        journal = engine.journal
        image = _journal_image(journal.path) if journal is not None else None
        self._open_segment("start", image)
        if script:
            self._script_row(*script)
        if not broker.simulated:
            self._tap_broker()
        if self._header["sessions"]:
            self._tap_sessions()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def tap_workers(self, workers: dict[str, SymbolWorker]) -> None:
        for symbol, worker in workers.items():
            worker.inbox = RecordingInbox(symbol, worker.inbox, self)  # type: ignore[assignment]
            if getattr(worker.strategy, "watcher", None) is not None:
                self._tap_reload(worker)

    def _tap_reload(self, worker: SymbolWorker) -> None:
        """Each hot reload a symbol's strategy makes (a file change or a reload
        command), with the bar it came after and the version it read; a
        rejected one too (an editor caught mid-write, a script that does not
        compile), so that a replay rejects it where the live run did: the
        text it read, or, when the file could not be read, why."""
        strategy = worker.strategy
        original = strategy.reload_if_changed
        watcher = strategy.watcher  # type: ignore[attr-defined]

        def reload_if_changed(force: bool = False) -> str | None:
            seen = watcher.current.digest
            try:
                message = original(force)
            except StrategyError as err:
                if watcher.current.digest != seen:  # read, then rejected
                    self._reload_row(worker, {"rejected": True})
                else:  # not read: a replay cannot read it again
                    self._reload_row(worker, {"unread": str(err)}, version=False)
                raise
            if message is not None:
                self._reload_row(worker, {})
            return message

        strategy.reload_if_changed = reload_if_changed  # type: ignore[method-assign]

    def _reload_row(self, worker: SymbolWorker, extra: dict[str, Any], version: bool = True) -> None:
        data: dict[str, Any] = {"reload": True, **extra}
        if version:
            read = worker.strategy.watcher.current  # type: ignore[attr-defined]
            if read.digest not in self._scripts:
                self._script_row(read.digest, self.engine.loaded.config.strategy.script or "", read.code)
            data["hash"] = read.digest
        self.put(("script", worker.symbol, time.time_ns(), worker.last_ts, *_NO_PRICES, json.dumps(data), None))

    def _script(self) -> tuple[str, str, str] | None:
        strategy = self.engine.loaded.config.strategy
        version = getattr(self.engine.host, "version", None)
        if strategy.script is None or version is None:
            return None
        return version.digest, strategy.script, version.code

    def _script_row(self, digest: str, path: str, text: str) -> None:
        self._scripts[digest] = (path, text)
        data = json.dumps({"hash": digest, "path": path})
        self._queue.append(("script", None, time.time_ns(), None, None, None, None, None, None, data, text.encode()))

    def _tap_broker(self) -> None:
        broker = self.engine.broker
        for method in BROKER_CALLS:
            original = getattr(broker, method)
            setattr(broker, method, _tapped(self, method, original))

    def _tap_sessions(self) -> None:
        source = self.engine.source
        original = source.entries_allowed

        def entries_allowed(symbol: str, ts: int) -> bool:
            allowed = original(symbol, ts)
            self.call(symbol, "entries_allowed", ts, bool(allowed))
            return allowed

        source.entries_allowed = entries_allowed  # type: ignore[method-assign]

    # ------------------------------------------------------------ writing

    def _open_segment(self, kind: str, image: bytes | None) -> None:
        now = time.time_ns()
        self._day = now // NS_PER_DAY
        day_dir = self.directory / time.strftime("%Y-%m-%d", time.gmtime(now / 1e9))
        day_dir.mkdir(parents=True, exist_ok=True)
        number = len(list(day_dir.glob("*.arrow"))) + 1
        self.path = day_dir / f"{number:03d}-{now}.arrow"
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed by _close_segment
        self._writer = pa.ipc.new_stream(self._file, SCHEMA, options=_COMPRESSION)
        header = json.dumps(self._header)
        self._queue.appendleft((kind, None, now, None, None, None, None, None, None, header, image))
        if kind == "roll":
            for digest, (path, text) in self._scripts.items():
                self._script_row(digest, path, text)

    def _close_segment(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._writer = None

    def idle(self) -> None:
        """The engine's burst of bars is over (its baton's watcher says so)."""
        self._told = True
        self._quiet.set()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            if self._told:  # the write waits for the burst to end, at most another FLUSH_EVERY
                self._quiet.clear()
                self._quiet.wait(FLUSH_EVERY)
            self._flush_guarded()

    def _flush_guarded(self) -> None:
        try:
            self.flush()
        except Exception as err:  # noqa: BLE001 - a recording failure never stops trading
            if self.failed is None:
                self.failed = f"recording stopped: {error_text(err)}"
                log.error("%s", self.failed)

    def flush(self) -> None:
        """Write what accumulated as one record batch and sync it."""
        if self.failed is not None or self._writer is None:
            self._queue.clear()
            return
        if time.time_ns() // NS_PER_DAY != self._day:
            self._close_segment()
            self._open_segment("roll", None)
        n = len(self._queue)
        if n == 0:
            return
        pop = self._queue.popleft
        rows = [pop() for _ in range(n)]
        rows = [r if r[0] != "event" else ("event", event_symbol(r[9]), *r[2:9], describe(r[9]), None) for r in rows]
        columns = list(zip(*rows))
        batch = pa.RecordBatch.from_arrays(
            [pa.array(col, type=field.type) for col, field in zip(columns, SCHEMA)], schema=SCHEMA
        )
        assert self._writer is not None
        self._writer.write_batch(batch)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.bytes_written = self._file.tell()

    def close(self) -> None:
        """Write the rest, mark the segment as ended cleanly, close it."""
        self._stop.set()
        self._quiet.set()
        if self._thread is not None:
            self._thread.join()
        if self._writer is None:
            return
        self._queue.append(("end", None, time.time_ns(), None, None, None, None, None, None, None, None))
        self._flush_guarded()
        self._close_segment()


def _text(path: Path) -> str:
    """The config as written (its ``${NAME}`` references, never their values)."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _base_round_qty() -> Callable[..., Any]:
    from engine_core.brokers import Broker

    return Broker.round_qty


def _has_sessions(engine: Engine) -> bool:
    from engine_core.sources import DataSource

    return type(engine.source).entries_allowed is not DataSource.entries_allowed


def _journal_image(path: Path) -> bytes | None:
    """The journal as a consistent SQLite image (what a restart recovers from)."""
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if hasattr(conn, "serialize"):  # Python 3.11+
            image: bytes = conn.serialize()
            return image
        with tempfile.TemporaryDirectory() as tmp:
            copy = sqlite3.connect(Path(tmp) / "journal.sqlite")
            conn.backup(copy)
            copy.close()
            return (Path(tmp) / "journal.sqlite").read_bytes()
    finally:
        conn.close()


def _tapped(recorder: Recorder, method: str, original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` answering as before, its answer recorded."""

    def encode(result: Any) -> Any:
        if method == "order_status":
            return state_json(result)
        if method == "positions":
            return {s: str(q) for s, q in result.items()}
        if method == "open_orders":
            return [open_order_json(found) for found in result]
        if method in ("starting_cash", "round_qty"):
            return str(result)
        return None

    def call(*args: Any) -> Any:
        symbol = key = order = None
        if method == "submit":
            symbol, key, order = args[0].symbol, args[0].client_id, order_terms(args[0])
        elif method in ("cancel", "order_status"):
            key = args[0]
        elif method == "round_qty":
            symbol, key = args[0], str(args[1])
        try:
            result = original(*args)
        except Exception as err:
            recorder.call(symbol, method, key, error=err, order=order)
            raise
        recorder.call(symbol, method, key, encode(result), order=order)
        return result

    return call
