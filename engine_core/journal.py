"""The order journal: everything the engine does with orders and positions,
written before it is acted on, so that a crash or restart loses nothing and
doubles nothing.

One SQLite file per engine instance (``<state_dir>/<engine id>.sqlite``),
WAL mode. Schema (version in ``PRAGMA user_version``):

``events``   append-only log: ``seq, ts, symbol, kind, data`` (JSON). Kinds:
             every order status (``intent``, ``submitted``, ``accepted``, ...:
             ``orders.OrderStatus``), ``fill``, ``transition``, ``stops``,
             ``halted``, ``recovered``, ``connection``.
``orders``   one row per client order id: ``client_id, symbol, side, qty,
             reason, status, filled_qty, created_ts, updated_ts, type, price,
             tif, venue_id``; status is an ``orders.OrderStatus`` value.
``symbols``  the latest snapshot of each symbol's worker (state, position,
             stops, client-id sequence, pending order), as JSON. A
             snapshot taken with an order, fill or transition is written
             in its transaction; one taken only because a bar went by is
             written within ``SNAPSHOT_DELAY`` seconds, with the other
             symbols' (one commit for a burst of bars, not one per bar).
``broker``   key/value rows a simulated broker keeps its own state in (the
             paper broker's open orders and fills), so that a paper run
             survives a restart exactly like a real one.

Money and quantities are stored as decimal strings.

With ``sync = "full"`` (the default) a commit is on disk before the engine
acts on it: the thread that committed fsyncs the write-ahead log after
releasing the journal's lock, and one fsync covers every commit before it,
so workers committing at the same moment share one (a group commit) and
none waits for another's fsync to write. The records a restart rebuilds by
asking the venue (an order's status after its intent: ``VENUE_TELLS``),
transitions, stops, snapshots, a simulated broker's records and connection
events are not synced on their own: they ride on the next synced commit
(an intent, a fill, a halt), so an order costs two fsyncs. Every
commit survives a crash of the engine (the operating system holds it); a
power loss can take the last unsynced ones, never one written before a
synced commit (the log is synced as a whole, in order).

One engine at a time: a run opens its journal ``exclusive``, holding an
advisory lock on ``<journal>.lock`` (``flock``) until it closes the journal.
A second run of the same config is refused before it connects to anything;
a process that dies (kill -9) loses the lock with it, so a restart is never
refused by a stale one. Readers (``engine status``, the dashboard) do not
take the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine_core.baton import step_aside
from engine_core.errors import JournalError
from engine_core.model import (
    ErrorEvent,
    FillEvent,
    Order,
    OrderEvent,
    OrderType,
    Side,
    TimeInForce,
    TransitionEvent,
    fill_key,
)
from engine_core.orders import OPEN_STATUSES, OrderStatus

SCHEMA_VERSION = 2
SNAPSHOT_DELAY = 0.2  # seconds a bar's snapshot may wait to be committed with the others
_APP_ID = 0x454E474E  # "ENGN": marks the file as this engine's journal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts INTEGER,
    symbol TEXT,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_symbol ON events(symbol, seq);
CREATE TABLE IF NOT EXISTS orders (
    client_id TEXT PRIMARY KEY,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    created_ts INTEGER NOT NULL,
    updated_ts INTEGER NOT NULL,
    type TEXT NOT NULL DEFAULT 'market',
    price TEXT,
    tif TEXT NOT NULL DEFAULT 'gtc',
    venue_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS orders_open ON orders(symbol, status);
CREATE TABLE IF NOT EXISTS symbols (
    symbol TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS broker (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
"""

_MIGRATIONS = {
    # version 1 -> 2: order types and venue ids; "acknowledged" is now "accepted"
    1: (
        "ALTER TABLE orders ADD COLUMN type TEXT NOT NULL DEFAULT 'market'",
        "ALTER TABLE orders ADD COLUMN price TEXT",
        "ALTER TABLE orders ADD COLUMN tif TEXT NOT NULL DEFAULT 'gtc'",
        "ALTER TABLE orders ADD COLUMN venue_id TEXT NOT NULL DEFAULT ''",
        "UPDATE orders SET status='accepted' WHERE status='acknowledged'",
    ),
}
_OPEN = tuple(s.value for s in OPEN_STATUSES)
# An order's statuses after its (always synced) intent that recovery learns
# again from the venue by client id: their commits need no fsync.
VENUE_TELLS = frozenset(
    {
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
        OrderStatus.UNKNOWN,
        OrderStatus.LOST,
        OrderStatus.REFUSED,
    }
)
# Events a restart settles again from the booked position and the venue:
# they ride on the next synced commit (an intent or a fill).
_UNSYNCED_EVENTS = frozenset({"connection", "transition", "stops"})
_ORDER_COLUMNS = (
    "client_id",
    "symbol",
    "side",
    "qty",
    "reason",
    "status",
    "filled_qty",
    "created_ts",
    "updated_ts",
    "type",
    "price",
    "tif",
    "venue_id",
)


class Journal:
    """Thread-safe: one connection, one lock; every write is its own
    transaction unless grouped with :meth:`transaction`, except the
    snapshots saved with ``soon``, which a thread of the journal's commits
    together (``flush``)."""

    def __init__(self, path: str | Path, *, sync: str = "full", exclusive: bool = False) -> None:
        self.path = Path(path)
        self._lock_fd = _lock_for_run(self.path) if exclusive else None
        self._lock = threading.RLock()
        self._depth = 0
        self._full = sync == "full"
        self._commits = 0  # commits made so far
        self._synced = 0  # commits known to be on disk
        self.synced_commits = 0  # commits that waited for an fsync (what an order costs in syncs)
        self._sync_lock = threading.Lock()
        self._wal_fd: int | None = None
        self._pending: dict[str, str] = {}  # symbol -> snapshot JSON saved with ``soon``, not yet written
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._flusher: threading.Thread | None = None
        self._flush_error: JournalError | None = None
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # "full": the journal fsyncs itself (_sync)
            if existed:
                self._check_existing()
            else:
                self._create()
        except sqlite3.DatabaseError as err:
            self._unlock()
            raise JournalError(f"{self.path}: not a readable journal ({err}); move it away to start afresh") from err
        except OSError as err:
            self._unlock()
            raise JournalError(f"{self.path}: cannot open the journal: {err}") from err
        except BaseException:
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _create(self) -> None:
        with self.transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute(f"PRAGMA application_id={_APP_ID}")

    def _check_existing(self) -> None:
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if app != _APP_ID:
            raise JournalError(f"{self.path}: not an engine journal; move it away or set engine.state_dir")
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema version {version} is newer than this engine reads "
                f"({SCHEMA_VERSION}); upgrade engine-trading-core"
            )
        if version < 1:
            raise JournalError(f"{self.path}: journal has no schema version; it is corrupt")
        result = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise JournalError(f"{self.path}: journal is corrupt ({result})")
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        missing = {"events", "orders", "symbols", "broker"} - tables
        if missing:
            raise JournalError(f"{self.path}: journal is corrupt (missing tables {', '.join(sorted(missing))})")
        with self.transaction():
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")

    def close(self) -> None:
        """Write the snapshots still waiting, then close."""
        self._closing.set()
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._lock:
            try:
                self.flush()
            finally:
                self._db.close()
                if self._wal_fd is not None:
                    os.close(self._wal_fd)
                self._unlock()

    @contextmanager
    def transaction(self, *, synced: bool = True) -> Iterator[None]:
        """Group writes into one atomic commit (nests; the outermost commits,
        and returns once it is on disk unless it says ``synced=False``)."""
        commit = 0  # the commit to see on disk once the lock is released
        if not self._lock.acquire(blocking=False):
            step_aside()  # another thread is writing (the snapshots' batch): the other symbols' turns go on
            self._lock.acquire()
        try:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as err:
                    raise JournalError(f"{self.path}: cannot write the journal: {err}") from err
                self._commits += 1
                if self._full and synced:
                    commit = self._commits
                    self.synced_commits += 1
        finally:
            self._lock.release()
        if commit:
            step_aside()  # the other symbols' turns go on while this one waits for the disk
            self._sync(commit)

    def _sync(self, commit: int) -> None:
        """Return once commits up to ``commit`` are on disk. One fsync of the
        write-ahead log covers every commit made before it starts, so threads
        arriving while one runs share the next."""
        with self._sync_lock:
            if self._synced >= commit:
                return  # another thread's fsync covered it
            done = self._commits  # every commit counted here is in the log already
            try:
                if self._wal_fd is None:
                    self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
                os.fsync(self._wal_fd)
            except OSError as err:
                raise JournalError(f"{self.path}: cannot write the journal: {err}") from err
            self._synced = done

    def _write(self, sql: str, args: tuple[Any, ...], synced: bool = True) -> None:
        try:
            with self.transaction(synced=synced):
                self._db.execute(sql, args)
        except sqlite3.Error as err:
            raise JournalError(f"{self.path}: cannot write the journal: {err}") from err

    # ------------------------------------------------------------ writes

    def record(self, event: TransitionEvent | OrderEvent | FillEvent | ErrorEvent) -> None:
        """Journal what a step did, from the record the event bus takes too
        (``outbox.write``): a transition, an order's status, a fill (with its
        order's cumulative quantity and status), a halt."""
        if isinstance(event, TransitionEvent):
            frm, to = event.from_state.value, event.to_state.value
            self.event("transition", event.symbol, event.ts, frm=frm, to=to, reason=event.reason)
        elif isinstance(event, OrderEvent):
            self.order(event.order, event.status, detail=event.detail, venue_id=event.venue_id)
        elif isinstance(event, FillEvent):
            f = event.fill
            self.fill(
                f.client_id,
                f.symbol,
                f.ts,
                str(event.filled),
                event.status,
                side=f.side.value,
                qty=str(f.qty),
                price=str(f.price),
                commission=str(f.commission),
                fee_qty=str(f.fee_qty),
                trade_id=f.trade_id,
            )
        else:
            self.event(event.kind, event.symbol, event.ts, message=event.message)

    def event(self, kind: str, symbol: str | None, ts: int | None, **data: Any) -> None:
        self._write(
            "INSERT INTO events(ts, symbol, kind, data) VALUES (?, ?, ?, ?)",
            (ts, symbol, kind, json.dumps(data, sort_keys=True, default=str)),
            synced=kind not in _UNSYNCED_EVENTS,
        )

    def order(self, order: Order, status: OrderStatus, *, detail: str = "", venue_id: str = "") -> None:
        """Record an order's status (inserting it the first time) and the event."""
        with self.transaction(synced=status not in VENUE_TELLS):
            self._write(
                "INSERT INTO orders(client_id, symbol, side, qty, reason, status, created_ts, updated_ts, "
                "type, price, tif, venue_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(client_id) DO UPDATE SET status=excluded.status, updated_ts=excluded.updated_ts, "
                "venue_id=CASE WHEN excluded.venue_id != '' THEN excluded.venue_id ELSE orders.venue_id END",
                (
                    order.client_id,
                    order.symbol,
                    order.side.value,
                    str(order.qty),
                    order.reason,
                    status.value,
                    order.ts,
                    order.ts,
                    order.type.value,
                    None if order.price is None else str(order.price),
                    order.tif.value,
                    venue_id,
                ),
            )
            self.event(
                status.value,
                order.symbol,
                order.ts,
                client_id=order.client_id,
                side=order.side.value,
                qty=str(order.qty),
                reason=order.reason,
                detail=detail,
            )

    def fill(self, client_id: str, symbol: str, ts: int, filled_qty: str, status: OrderStatus, **data: Any) -> None:
        with self.transaction():
            self._write(
                "UPDATE orders SET filled_qty=?, status=?, updated_ts=? WHERE client_id=?",
                (filled_qty, status.value, ts, client_id),
            )
            self.event("fill", symbol, ts, client_id=client_id, **data)

    def save_symbol(self, symbol: str, snapshot: dict[str, Any], *, soon: bool = False) -> None:
        """Write a symbol's snapshot now (in the current transaction, if
        any), or with ``soon`` hand it to the journal's thread, which commits
        the waiting snapshots of every symbol together within
        ``SNAPSHOT_DELAY`` seconds (and ``close`` the rest). ``soon`` is for
        what only a bar changed: a crash loses at most that much of the
        symbols' bar progress, never an order, a fill or a transition, whose
        snapshots are written with them."""
        data = json.dumps(snapshot, sort_keys=True, default=str)
        if soon:
            if self._flush_error is not None:
                raise self._flush_error
            with self._pending_lock:
                self._pending[symbol] = data
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_soon, name="journal-flush", daemon=True)
                    self._flusher.start()
            self._wake.set()
            return
        try:
            # not synced on its own: what an order or a fill changed is synced with
            # them (in their transaction), the rest rides on the next synced commit
            with self.transaction(synced=False):  # an older snapshot still waiting must not be written after this one
                with self._pending_lock:
                    self._pending.pop(symbol, None)
                self._db.execute(_SAVE_SYMBOL, (symbol, data))
        except sqlite3.Error as err:
            raise JournalError(f"{self.path}: cannot write the journal: {err}") from err

    def flush(self) -> None:
        """Commit the snapshots waiting to be written, in one transaction."""
        with self._lock:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            if batch:
                try:
                    with self.transaction(synced=False):
                        self._db.executemany(_SAVE_SYMBOL, batch.items())
                except sqlite3.Error as err:
                    raise JournalError(f"{self.path}: cannot write the journal: {err}") from err

    def _flush_soon(self) -> None:
        """The journal's thread: commit waiting snapshots in bursts, each
        within SNAPSHOT_DELAY seconds of the first one that waited."""
        while not self._closing.is_set():
            self._wake.wait()
            self._closing.wait(SNAPSHOT_DELAY)  # gather the rest of the burst
            self._wake.clear()
            if self._closing.is_set():
                return  # close() writes the rest
            try:
                self.flush()
            except JournalError as err:  # the next save_symbol on a worker raises it
                self._flush_error = err
                return

    def put(self, key: str, value: Any, *, synced: bool = True) -> None:
        """A simulated broker's own state (``synced=False``: it rides on the
        next synced commit, which the worker makes at once)."""
        self._write(
            "INSERT INTO broker(key, data) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET data=excluded.data",
            (key, json.dumps(value, sort_keys=True, default=str)),
            synced=synced,
        )

    # ------------------------------------------------------------ reads

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as err:
                raise JournalError(f"{self.path}: cannot read the journal: {err}") from err

    def get(self, key: str) -> Any:
        rows = self._read("SELECT data FROM broker WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else None

    def items(self, prefix: str) -> list[tuple[str, Any]]:
        """A simulated broker's state rows whose key starts with ``prefix``."""
        rows = self._read(
            "SELECT key, data FROM broker WHERE key >= ? AND key < ? ORDER BY key", (prefix, prefix + "\uffff")
        )
        return [(k, json.loads(d)) for k, d in rows]

    def symbols(self) -> dict[str, dict[str, Any]]:
        return {s: json.loads(d) for s, d in self._read("SELECT symbol, data FROM symbols ORDER BY symbol")}

    def orders(self, symbol: str | None = None, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders"
        where, args = [], []
        if symbol is not None:
            where.append("symbol=?")
            args.append(symbol)
        if statuses:
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            args.extend(statuses)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [
            dict(zip(_ORDER_COLUMNS, row)) for row in self._read(sql + " ORDER BY created_ts, client_id", tuple(args))
        ]

    def open_orders(self, symbol: str) -> list[dict[str, Any]]:
        return self.orders(symbol, _OPEN)

    def unsettled_orders(self, symbol: str) -> list[dict[str, Any]]:
        """Orders to reconcile with the broker after a restart: those still
        open, and those whose journaled fills do not add up to their status
        (a fill reported but not booked when the engine stopped)."""
        booked: dict[str, Decimal] = {}
        for e in self.events(symbol, kind="fill"):
            booked[e["client_id"]] = booked.get(e["client_id"], Decimal(0)) + Decimal(e.get("qty", "0"))
        out = []
        for row in self.orders(symbol):
            got = booked.get(row["client_id"], Decimal(0))
            filled = Decimal(row["filled_qty"])
            status = OrderStatus(row["status"])
            if status.is_open or got != filled or (status is OrderStatus.FILLED and got < Decimal(row["qty"])):
                out.append(row)
        return out

    def booked_fill_keys(self, symbol: str) -> set[str]:
        return {fill_key(e["client_id"], e.get("trade_id", "")) for e in self.events(symbol, kind="fill")}

    def events(
        self, symbol: str | None = None, kind: str | None = None, last: int | None = None
    ) -> list[dict[str, Any]]:
        sql = "SELECT seq, ts, symbol, kind, data FROM events"
        where, args = [], []
        if symbol is not None:
            where.append("symbol=?")
            args.append(symbol)
        if kind is not None:
            where.append("kind=?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if last is not None:
            sql = f"SELECT * FROM ({sql.replace(' ORDER BY seq', ' ORDER BY seq DESC')} LIMIT {int(last)}) ORDER BY seq"
        return [
            {"seq": seq, "ts": ts, "symbol": sym, "kind": kind, **json.loads(data)}
            for seq, ts, sym, kind, data in self._read(sql, tuple(args))
        ]


_SAVE_SYMBOL = "INSERT INTO symbols(symbol, data) VALUES (?, ?) ON CONFLICT(symbol) DO UPDATE SET data=excluded.data"


def _lock_for_run(path: Path) -> int:
    """Hold ``<path>.lock`` for this process (the descriptor returned), or
    refuse: another engine runs on this journal."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise JournalError(f"{lock_path}: cannot open the journal's lock: {err}") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise JournalError(
            f"{path}: in use by another engine (pid {holder}); stop it, "
            "or give this config its own [engine] id or state_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def order_from_row(row: dict[str, Any]) -> Order:
    """An order as the journal's ``orders`` table (or a simulated broker's record) holds it."""
    price = row.get("price")
    return Order(
        row["client_id"],
        row["symbol"],
        Side(row["side"]),
        Decimal(row["qty"]),
        int(row.get("created_ts", row.get("ts", 0))),
        row.get("reason", ""),
        OrderType(row.get("type") or "market"),
        None if price is None else Decimal(price),
        TimeInForce(row.get("tif") or "gtc"),
    )
