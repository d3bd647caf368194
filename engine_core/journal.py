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
             stops, client-id sequence, pending order), as JSON: taken once
             for everything a step of the worker wrote (``attach``, below),
             and written in the same commit.
``broker``   key/value rows a simulated broker keeps its own state in (the
             paper broker's open orders and fills), so that a paper run
             survives a restart exactly like a real one.

Money and quantities are stored as decimal strings.

Every commit is applied by the journal's writer thread (``journal_sync.py``),
in order, several to a SQLite transaction. With ``sync = "full"`` (the
default) a commit that must be on disk before the engine acts (an intent:
its order is sent next; a halt) waits, without the journal's lock and
without its turn, for an fsync of the write-ahead log that began after it,
and the commits waiting together share one (a group commit). Live on a
venue an intent's step does not wait for it: the order is sent at a turn
of its worker that the writer gives it once the fsync has ended (``then``;
``decisions.send``). A simulated
broker's intent does not wait (``broker_in_journal``): the broker keeps
its orders in this journal, written behind the intent, so a crash can keep
the intent without its order but never the order without its intent. A fill is
synced by the writer's next round without its worker waiting: whatever the
worker sends next has an intent, which waits, and covers it. The records a
restart rebuilds by asking the venue (an order's status after its intent:
``VENUE_TELLS``), transitions, stops, snapshots, a simulated broker's
records and connection events are not synced on their own: they ride on the
next synced commit.

What a symbol's worker writes in its steps (``attach``: while its
``running`` is the writing thread) is held, not handed over: the journal's
thread hands it over in one commit, with one snapshot taken under the
worker's lock, once no turn runs (``quiet``, which the engine's baton
tells it of: ``idle``; a fill asks for that at once, anything else within
``SNAPSHOT_DELAY``, and a burst longer than ``QUIET_WAIT`` does not hold it
back), and a write the worker waits for (an
intent, a halt) takes what the symbol holds with it. So a symbol's records
reach the file in the order it wrote them, and a crash or a power loss can
take the last of them, never one written before the symbol's synced
commits: a restart learns those again from the venue and settles the state
from the booked position. The journal's thread also checkpoints the log
(``_checkpoint``), off the journal's lock, then copies the commits made
meanwhile with the writer paused, so that the next round starts the log
over.

One engine at a time: a run opens its journal ``exclusive``, holding an
advisory lock on ``<journal>.lock`` (``flock``) until it closes the journal.
A second run of the same config is refused before it connects to anything;
a process that dies (kill -9) loses the lock with it, so a restart is never
refused by a stale one. Readers (``engine status``, the dashboard) do not
take the lock.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from engine_core.baton import step_aside
from engine_core.errors import JournalError
from engine_core.journal_reads import JournalReads
from engine_core.journal_schema import (
    APP_ID,
    APPLY,
    BROKER,
    EVENT,
    FILL,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    STATEMENTS,
    STATUS,
    SYMBOL,
)
from engine_core.journal_sync import ENCODE, MANY, ONE, GroupCommit, Statement
from engine_core.journal_sync import encode as _encode
from engine_core.model import (
    ErrorEvent,
    FillEvent,
    Order,
    OrderEvent,
    OrderType,
    Side,
    TimeInForce,
    TransitionEvent,
)
from engine_core.orders import OrderStatus

SNAPSHOT_DELAY = 0.2  # seconds a bar's snapshot may wait to be committed with the others
BUSY_WAIT = 0.02  # seconds the journal's thread waits for a busy worker before leaving its snapshot for later
QUIET_WAIT = 0.5  # seconds the journal's thread waits for a burst of turns to end before writing anyway
CHECKPOINT_COMMITS = 500  # commits after which the journal's thread copies the write-ahead log into the file
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


class Worker(Protocol):
    """What the journal needs of a symbol's worker to hold its writes (``Journal.attach``)."""

    running: int  # the thread in one of its steps (0: none)
    lock: threading.Lock  # held through a step

    def snapshot(self) -> dict[str, Any]: ...


class Held:
    """What a symbol's worker wrote in its steps and has not handed over yet."""

    __slots__ = ("worker", "records", "synced", "dirty")

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.records: list[Statement] = []  # the statements, in order
        self.synced = False  # one of them must be synced (a fill)
        self.dirty = False  # the symbol's state changed since its last snapshot


class Journal(JournalReads):
    """Thread-safe. Every write is a commit of its own unless grouped with
    :meth:`transaction`; commits are handed, in order, to the writer thread
    (``journal_sync.GroupCommit``), except what a symbol's step writes,
    which is held until the journal's thread (or an intent) hands it over
    (``attach``), and the snapshots saved with ``soon``, which the journal's
    thread commits together (``flush``)."""

    def __init__(self, path: str | Path, *, sync: str = "full", exclusive: bool = False) -> None:
        self.path = Path(path)
        self._lock_fd = _lock_for_run(self.path) if exclusive else None
        self._lock = threading.RLock()
        self._depth = 0
        self._open: list[Statement] = []  # the open transaction's statements, handed to the writer at its end
        self._sync_wanted = False  # something written in the open transaction must be synced
        self._waits = True  # the open transaction's writer waits for the disk when it is synced
        self._pending: dict[str, str] = {}  # symbol -> snapshot JSON saved with ``soon``, not yet written
        # symbol -> what its worker's steps wrote and have not handed to the writer yet (``attach``)
        self._held: dict[str, Held] = {}
        self.quiet: Callable[[], bool] | None = None  # no symbol's turn runs (the engine's baton), when known
        # The broker keeps its orders in this journal (a simulated broker's
        # ``bind_journal``), each written behind its intent: intents need not wait.
        self.broker_in_journal = False
        self._urgent = False  # a held write must be synced: the journal's thread does not gather more first
        self._pending_lock = threading.Lock()
        # symbol -> the snapshot its row holds (committed, or in the open transaction)
        self._written: dict[str, str] = {}
        self._failed: dict[str, JournalError] = {}  # symbol -> why the journal's thread could not take its snapshot
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._told = threading.Event()  # the baton told that a burst is over (``idle``), since the last look
        self._flusher: threading.Thread | None = None
        self._checkpointed = 0  # the commits the last checkpoint was asked for at
        self.log_bytes = 0  # the write-ahead log's largest size at a checkpoint (it starts over after one)
        self._flush_error: JournalError | None = None
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # the writer's thread applies every commit (journal_sync.py); reads pause it
            self._group = GroupCommit(self._db, self.path, APPLY, full=sync == "full")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # "full": the journal syncs the log itself (journal_sync.py)
            self._db.execute("PRAGMA wal_autocheckpoint=0")  # the journal's thread checkpoints (_checkpoint)
            if existed:
                self._check_existing()
            else:
                self._create()
            self._db.executescript(STATEMENTS)
            self._group.open()
        except sqlite3.DatabaseError as err:
            self._unlock()
            raise JournalError(f"{self.path}: not a readable journal ({err}); move it away to start afresh") from err
        except OSError as err:
            self._unlock()
            raise JournalError(f"{self.path}: cannot open the journal: {err}") from err
        except BaseException:
            self._unlock()
            raise

    @property
    def commits(self) -> int:
        """Commits made so far (``synced_commits`` of them waited to be on disk)."""
        return self._group.commits

    @property
    def synced_commits(self) -> int:
        """Commits that had to be on disk, waited for or not (what an order costs in syncs)."""
        return self._group.synced_commits

    @property
    def rounds(self) -> int:
        """SQLite transactions the writer made: fewer than ``commits`` when commits shared one."""
        return self._group.rounds

    @property
    def fsyncs(self) -> int:
        """Fsyncs of the write-ahead log: fewer than ``synced_commits`` when commits shared one."""
        return self._group.fsyncs

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def _create(self) -> None:
        with self._setup():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._db.execute(f"PRAGMA application_id={APP_ID}")

    def _check_existing(self) -> None:
        app = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if app == version == 0 and self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            # killed while creating it: the switch to WAL had written the file's header, the schema's commit not
            self._create()
            return
        if app != APP_ID:
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
        with self._setup():
            while version < SCHEMA_VERSION:
                for statement in MIGRATIONS[version]:
                    self._db.execute(statement)
                version += 1
                self._db.execute(f"PRAGMA user_version={version}")

    @contextmanager
    def _setup(self) -> Iterator[None]:
        """A transaction made while the journal opens, before its writer runs."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def failed(self) -> JournalError | None:
        """Why the journal stopped writing (every write raises it since), or None."""
        return self._group.failed

    def close(self) -> None:
        """Write the snapshots still waiting and every commit handed to the
        writer, then close (raises if that last writing fails; a journal that
        had failed before closes all the same: its writers were told)."""
        self._closing.set()
        self._wake.set()
        self._told.set()
        if self._flusher is not None:
            self._flusher.join()
        failed = self._group.failed
        try:
            self._take_held()  # (without the journal's lock: a worker holding its own may be waiting for it)
            with self._lock:
                self.flush()
        except JournalError:
            if failed is None:
                raise
        finally:
            with self._lock:
                self._group.close()
                self._db.close()
                self._unlock()
        if self._group.failed is not None and failed is None:
            raise self._group.failed

    @contextmanager
    def transaction(self, *, synced: bool = True, waits: bool = True, symbol: str | None = None) -> Iterator[None]:
        """Group writes into one atomic commit (nests; the outermost commits,
        and returns once it is on disk unless neither it nor anything written
        inside it asked to be synced: ``synced=False`` on the outermost does
        not take away an inner write's sync). ``waits=False`` on the
        outermost: synced all the same (the writer's next fsync), but the
        caller goes on at once: what it sends next is journaled after it, and
        an intent waits for the disk, so nothing leaves before it is on disk
        (a fill: ``updates.py``). ``symbol``: made in that symbol's step,
        it is held with the step's other writes (``_hand``)."""
        commit = 0  # the commit to see on disk once the lock is released
        self._acquire()
        try:
            if self._depth == 0:
                self._open = []
                self._sync_wanted = False
                self._waits = waits
            self._sync_wanted = self._sync_wanted or synced
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._open = []  # nothing of it reaches the writer
                    self._written.clear()  # what the rows will hold is not known any more
                raise
            self._depth -= 1
            if self._depth == 0 and self._open:
                statements, self._open = self._open, []
                commit = self._hand(symbol, statements, self._sync_wanted, self._waits, True)
        finally:
            self._lock.release()
        if commit:
            self._group.wait(commit)  # the other symbols' turns go on while this one waits for the disk

    def _acquire(self) -> None:
        """Take the journal's lock; when another thread holds it (its
        transaction, a hand-over) the caller steps aside first: the other
        symbols' turns go on while it waits."""
        if not self._lock.acquire(blocking=False):
            step_aside()
            self._lock.acquire()

    def _committed(self, statements: list[Statement], synced: bool) -> int:
        """Hand a commit to the writer (the journal's lock held): its number
        when it must be on disk before the caller goes on, else 0."""
        commit = self._group.push(statements, synced)
        if self._group.commits - self._checkpointed == CHECKPOINT_COMMITS:  # a journal written without bars
            self._start_flusher()
            self._wake.set()
        return commit

    def _write(
        self,
        op: int,
        args: Any,
        synced: bool = True,
        how: int = ONE,
        symbol: str | None = None,
        waits: bool = True,
        then: Callable[[], None] | None = None,
    ) -> None:
        """One statement: in the current transaction, or else as a commit of
        its own, which its writer waits for when it is ``synced`` and
        ``waits``; in ``symbol``'s step, held with what the step wrote before
        (``_hand``). With ``then`` (a synced write outside a transaction) the
        writer does not wait: ``then`` is called once the commit is on disk
        or the journal has failed (``failed``)."""
        commit = 0
        self._acquire()
        try:
            if self._depth == 0:
                commit = self._hand(symbol, [(op, args, how)], synced, synced and waits, False)
            else:
                self._open.append((op, args, how))
                self._sync_wanted = self._sync_wanted or synced  # the transaction it is in syncs it
        finally:
            self._lock.release()
        if then is not None:
            if not commit:  # (a bug: ``then`` would never be called, or called before the disk has it)
                raise RuntimeError("a journal write with 'then' must be a synced commit of its own")
            self._group.then(commit, then)
        elif commit:
            self._group.wait(commit)

    def _hand(self, symbol: str | None, statements: list[Statement], synced: bool, waits: bool, whole: bool) -> int:
        """A commit made (the journal's lock held): handed to the writer, or,
        made in the step of a symbol's worker (``attach``), held with the
        step's other writes until the journal's thread hands them over with
        the symbol's snapshot (``_release``) once no turn runs. A commit its
        writer waits for takes what the symbol holds with it, and the
        snapshot when a fill is among that or the commit is a ``whole``
        transaction (a halt): an intent (it is sent next) leaves the
        snapshot to the journal's thread. The number to wait for, or 0."""
        held = self._stepping(symbol)
        if symbol is None or held is None:
            commit = self._committed(statements, synced)
            return commit if waits else 0
        if synced and waits:
            return self._committed(self._release(symbol, held, statements, whole or held.synced), True)
        if synced and self._group.failed is not None:  # a write that must reach the disk (an intent) cannot:
            raise self._group.failed  # nothing is sent after it
        held.records.extend(statements)
        held.synced = held.synced or synced
        self._soon(urgent=synced)
        return 0

    def _stepping(self, symbol: str | None) -> Held | None:
        """What ``symbol`` holds, when its worker is in a step on this thread."""
        held = self._held.get(symbol) if symbol is not None else None
        return held if held is not None and held.worker.running == threading.get_ident() else None

    def _release(self, symbol: str, held: Held, statements: list[Statement], snapshot: bool = True) -> list[Statement]:
        """What ``symbol`` holds, then ``statements``, then (with ``snapshot``)
        its snapshot when anything changed it (taken now: its worker is in a
        step on this thread, or the caller holds the worker's lock); nothing
        held after, but the snapshot still to take without ``snapshot``."""
        take = snapshot and held.dirty
        data = _encode(held.worker.snapshot()) if take else None  # (raises before anything is taken)
        out = held.records + statements if held.records else statements
        held.records = []
        held.synced = False
        held.dirty = held.dirty and not take
        if data is not None and self._written.get(symbol) != data:
            out.append((SYMBOL, (symbol, data), ONE))
            self._written[symbol] = data
        return out

    # ------------------------------------------------------------ writes

    def record(
        self, event: TransitionEvent | OrderEvent | FillEvent | ErrorEvent, then: Callable[[], None] | None = None
    ) -> None:
        """Journal what a step did, from the record the event bus takes too
        (``outbox.write``): a transition, an order's status, a fill (with its
        order's cumulative quantity and status), a halt. ``then``: an order's
        intent that nobody waits for (``order``)."""
        if isinstance(event, TransitionEvent):
            frm, to = event.from_state._value_, event.to_state._value_  # (``_value_``: no descriptor call)
            self.event("transition", event.symbol, event.ts, frm=frm, to=to, reason=event.reason)
        elif isinstance(event, OrderEvent):
            self.order(event.order, event.status, detail=event.detail, venue_id=event.venue_id, then=then)
        elif isinstance(event, FillEvent):
            f = event.fill
            self.fill(
                f.client_id,
                f.symbol,
                f.ts,
                str(event.filled),
                event.status,
                side=f.side._value_,
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
            EVENT,
            (ts, symbol, kind, data),
            synced=kind not in _UNSYNCED_EVENTS,
            how=ENCODE,
            symbol=symbol,
        )

    def order(
        self,
        order: Order,
        status: OrderStatus,
        *,
        detail: str = "",
        venue_id: str = "",
        then: Callable[[], None] | None = None,
    ) -> None:
        """Record an order's status (inserting it the first time) and the
        event. An intent is synced before the order is sent: its writer waits
        for the disk, unless the broker keeps its orders in this journal
        (``broker_in_journal``) or ``then`` is given (called once the intent
        is on disk, or the journal has failed: a venue order's send)."""
        # (an enum's ``_value_``: ``value`` is a descriptor, two Python calls, each time)
        side, qty = order.side._value_, str(order.qty)
        data = {"client_id": order.client_id, "side": side, "qty": qty, "reason": order.reason, "detail": detail}
        self._write(
            STATUS,
            (
                order.client_id,
                order.symbol,
                side,
                qty,
                order.reason,
                status._value_,
                order.ts,
                order.type._value_,
                None if order.price is None else str(order.price),
                order.tif._value_,
                venue_id,
                data,
            ),
            synced=status not in VENUE_TELLS,
            how=ENCODE,
            symbol=order.symbol,
            waits=not self.broker_in_journal,
            then=then,
        )

    def fill(self, client_id: str, symbol: str, ts: int, filled_qty: str, status: OrderStatus, **data: Any) -> None:
        self._write(
            FILL,
            (
                client_id,
                symbol,
                ts,
                filled_qty,
                status._value_,
                {"client_id": client_id, **data},
            ),
            how=ENCODE,
            symbol=symbol,
        )

    def save_symbol(self, symbol: str, snapshot: dict[str, Any], *, soon: bool = False) -> None:
        """Write a symbol's snapshot now (in the current transaction, if
        any), or with ``soon`` hand it to the journal's thread, which commits
        the waiting snapshots of every symbol together within
        ``SNAPSHOT_DELAY`` seconds (and ``close`` the rest). ``soon`` is for
        what only a bar changed: a crash loses at most that much of the
        symbols' bar progress, never an order, a fill or a transition, whose
        snapshots are written with them."""
        data = _encode(snapshot)
        if soon:
            with self._pending_lock:
                self._pending[symbol] = data
            self._soon()
            return
        with self._lock:  # an older snapshot still waiting must not be written after this one
            with self._pending_lock:
                self._pending.pop(symbol, None)
            if self._written.get(symbol) == data:
                return  # the row holds it already (a step's second snapshot, nothing changed between)
            # not synced on its own: what an order or a fill changed is synced with
            # them (in their transaction), the rest rides on the next synced commit
            self._write(SYMBOL, (symbol, data), synced=False)
            self._written[symbol] = data

    def attach(self, symbol: str, worker: Worker) -> None:
        """What ``worker`` writes for ``symbol`` in its steps (while its
        ``running`` is the writing thread) is held and handed to the writer
        together, with one snapshot (``worker.snapshot()``) for all of them,
        by the journal's thread between bursts (``_hand``)."""
        self._held[symbol] = Held(worker)

    def mark(self, symbol: str) -> bool:
        """``symbol``'s state changed in its worker's step on this thread: its
        snapshot goes with what the step writes (taken when it is handed
        over). False when the symbol is not in such a step."""
        held = self._stepping(symbol)
        if held is None:
            return False
        if self._failed and symbol in self._failed:
            raise self._failed.pop(symbol)
        held.dirty = True
        self._soon()
        return True

    def _soon(self, urgent: bool = False) -> None:
        """Something waits: the journal's thread writes it within
        SNAPSHOT_DELAY, or, ``urgent`` (a fill), as soon as no turn runs."""
        if self._flush_error is not None:
            raise self._flush_error
        if self._flusher is None:
            self._start_flusher()
        if urgent and not self._urgent:
            self._urgent = True
            self._wake.set()
        elif not self._wake.is_set():  # once per burst: the journal's thread is then gathering the rest
            self._wake.set()

    def _start_flusher(self) -> None:
        with self._pending_lock:
            if self._flusher is None and not self._closing.is_set():
                self._flusher = threading.Thread(target=self._flush_soon, name="journal-flush", daemon=True)
                self._flusher.start()

    def _take_held(self, wait: bool = True, overdue: float | None = None) -> bool:
        """Hand over what each symbol holds, with its snapshot, under its
        worker's lock (a worker in a step on this thread needs none), so
        that the worker's next writes come after it. Unless told to
        ``wait``, a worker still busy after ``BUSY_WAIT`` (a bar takes well
        under a millisecond; a broker that is slow to answer, seconds) is
        left for the next round, and, before ``overdue`` (monotonic), the
        round stops when a turn begins: a burst waits for none of it. True
        when everything held was handed over."""
        me = threading.get_ident()
        done = True
        for symbol, held in list(self._held.items()):
            if not (held.records or held.dirty):
                continue
            if overdue is not None and self.quiet is not None and not self.quiet() and time.monotonic() < overdue:
                return False
            worker = held.worker
            own = worker.running == me
            if not own and not worker.lock.acquire(timeout=-1 if wait else BUSY_WAIT):
                done = False
                continue
            try:
                synced = held.synced
                try:
                    statements = self._release(symbol, held, [])
                except Exception as err:  # noqa: BLE001 - a bug: the symbol's next mark says it (and halts it)
                    self._failed[symbol] = JournalError(f"{self.path}: cannot take {symbol}'s snapshot: {err}")
                    statements, held.records, held.synced, held.dirty = held.records, [], False, False
                if statements:
                    with self._lock:
                        self._committed(statements, synced)
            finally:
                if not own:
                    worker.lock.release()
        return done

    def flush(self, *, wait: bool = True, overdue: float | None = None) -> bool:
        """Hand over what the symbols hold and the snapshots waiting to be
        written (without ``wait``, those of workers that stay busy wait for
        the next round; see ``_take_held``). True when nothing is left."""
        done = self._take_held(wait, overdue)
        with self._lock:
            with self._pending_lock:
                batch, self._pending = self._pending, {}
            if batch:
                self._write(SYMBOL, list(batch.items()), synced=False, how=MANY)
                self._written.update(batch)
        return done

    def _flush_soon(self) -> None:
        """The journal's thread: commit waiting snapshots in bursts, each
        within SNAPSHOT_DELAY seconds of the first one that waited, and
        checkpoint the write-ahead log."""
        checkpointer: sqlite3.Connection | None = None
        try:
            while not self._closing.is_set():
                self._wake.wait()
                if not self._urgent:
                    self._closing.wait(SNAPSHOT_DELAY)  # gather the rest of the burst
                self._wake.clear()
                self._urgent = False
                overdue = time.monotonic() + QUIET_WAIT
                while self.quiet is not None:  # a burst runs: after it, as the baton tells (``idle``)
                    self._told.clear()  # (before the look: a burst that ends after it is told after it)
                    left = overdue - time.monotonic()
                    if self.quiet() or left <= 0 or self._closing.is_set():
                        break
                    self._told.wait(left)
                if self._closing.is_set():
                    return  # close() writes the rest
                try:
                    if not self.flush(wait=False, overdue=overdue):  # busy workers, or a turn began
                        self._wake.set()
                    if self._group.commits - self._checkpointed >= CHECKPOINT_COMMITS:
                        checkpointer = self._checkpoint(checkpointer)
                except JournalError as err:  # the next save_symbol on a worker raises it
                    self._flush_error = err
                    return
        finally:
            if checkpointer is not None:
                checkpointer.close()

    def idle(self) -> None:
        """The engine's baton: a burst of turns is over, or has run another
        ``IDLE_EVERY`` (``Baton.on_idle``). The journal's thread, waiting for
        the end of a burst, looks again: told, it takes no interpreter's lock
        from the burst to ask."""
        self._told.set()

    def _checkpoint(self, checkpointer: sqlite3.Connection | None) -> sqlite3.Connection:
        """Copy the write-ahead log into the database file, on a connection
        of the journal's thread's own, without the journal's lock: the
        workers go on writing meanwhile. (SQLite's automatic checkpoint ran
        in the commit that crossed its limit, holding the journal's lock
        through a sync of the log and one of the file: every worker waited.)
        Then the few commits made meanwhile are copied holding the lock, so
        that the next commit finds the whole log copied and writes it again
        from its start: SQLite starts the log over only then, and a log that
        workers never stop writing otherwise grows for the whole session,
        every commit appending to the file (a block allocated per page, and
        more for each fsync to write)."""
        self._checkpointed = self._group.commits
        try:
            if checkpointer is None:
                checkpointer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.log_bytes = max(self.log_bytes, os.path.getsize(f"{self.path}-wal"))
            busy, _, _ = checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy:
                with self._group.paused():
                    checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as err:
            raise JournalError(f"{self.path}: cannot checkpoint the journal: {err}") from err
        return checkpointer

    def put(self, key: str, value: Any, *, synced: bool = True, symbol: str | None = None) -> None:
        """A simulated broker's own state (``synced=False``: it rides on the
        next synced commit, which the worker makes at once). A dict is
        copied, one level deep, and encoded by the writer: its values must
        be numbers, strings or None (the paper broker's order records)."""
        self._write(
            BROKER,
            (key, dict(value) if type(value) is dict else value),
            synced=synced,
            how=ENCODE,
            symbol=symbol,
        )

    def awaited(self) -> bool:
        """A commit not yet on disk is waited for, or followed by a venue order's send."""
        return self._group.awaited()

    def drain(self) -> None:
        """Return once every commit handed over so far is applied (and on
        disk, with ``sync = "full"``); raises the writer's failure. A turn
        waiting for it steps aside: the other symbols' turns go on."""
        step_aside()
        self._group.drain()

    # ------------------------------------------------------------ reads

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows, with every commit so far applied (what symbols hold handed over first)."""
        self.flush()
        self._group.drain()
        with self._group.paused():
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as err:
                raise JournalError(f"{self.path}: cannot read the journal: {err}") from err


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
