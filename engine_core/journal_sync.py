"""The journal's writer: one thread applies every commit to SQLite, in the
order the engine made them, several to a transaction, and syncs the
write-ahead log once for all those that must be on disk.

A commit (``Journal.transaction``, or a write of its own) is a list of
statements the engine hands over with :meth:`GroupCommit.push`; the
caller goes on at once unless the commit must be synced (an intent, a
fill, a halt): then it steps aside (its turn's successors run their bars
meanwhile) and :meth:`GroupCommit.wait` returns once the writer has
committed it and, with ``sync = "full"``, once an fsync of the log that
began after that commit has ended (or, nobody waiting, :meth:`GroupCommit.then`
calls what follows it then: a venue order's send). The writer takes every commit waiting
when it looks, applies them in one SQLite transaction (``synchronous=NORMAL``:
COMMIT writes the frames into ``<journal>-wal`` without syncing) and fsyncs
the log when one of them must be synced; the commits pushed meanwhile are
the next round's. So a burst of orders costs a few SQLite transactions and
fsyncs, not one of each per statement, and none of SQLite's work (nor an
fsync) runs on a worker's thread: the statements run without the
interpreter's lock, on the other core.

What a commit that did not wait costs in a crash: a kill -9 or a power loss
can take the last commits not yet applied or synced, never one handed over
before a synced commit (the writer applies them in order, and the log is
synced as a whole). Those are what a restart learns again from the venue or
settles from the booked position (the journal's rule, ARCHITECTURE.md).

A round is one statement (``apply``, the journal's), its own transaction:
its rows, one JSON array, go through a view whose triggers write each, so
the writer takes the interpreter's lock back once per round (and once per
fsync). Taking it back after each write made
the writer wait, each time, for a burst's thread to let go of it (up to the
interpreter's switch interval, 5 ms), and the intents waiting behind it.

Why an fsync of the log is enough whatever SQLite does meanwhile:

- a checkpoint (the journal's thread, ``PASSIVE``, on its own connection
  with SQLite's default ``synchronous``) syncs the log before it copies it
  into the database file and syncs the file before it marks the log as
  copied; a writer starts the log again from its beginning only once all
  of it is copied, and syncs the new header first (any ``synchronous`` but
  ``OFF``). A commit written over that way was in the database file,
  synced;
- the log stays one file while the journal's connection is open (SQLite
  deletes it when the last connection closes); its directory entry is
  synced when the journal opens it here (and again should it ever be a
  new file: each round checks);
- an fsync that failed may have dropped what it did not write: from then
  on every commit raises, none is told it is on disk. A commit SQLite
  refuses fails the journal the same way (the disk is full, the file gone).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine_core.baton import step_aside
from engine_core.errors import JournalError

# One write of a commit: the journal's op (what its one statement, ``apply``, does
# with the row), its arguments, and how to take them: ONE, MANY (rows of arguments)
# or ENCODE (one, its last argument a dict the writer encodes as JSON: the
# engine's thread that made it does not pay for it; the dict is the write's own,
# never changed after).
Statement = tuple[int, Any, int]
ONE, MANY, ENCODE = 0, 1, 2
# JSON as every record is written (keys sorted, anything else as its str), one
# encoder for all: json.dumps with arguments builds an encoder per call.
encode = json.JSONEncoder(sort_keys=True, default=str).encode
_rows = json.JSONEncoder(separators=(",", ":")).encode  # a round's rows: strings, numbers and nulls


class GroupCommit:
    """A journal's writer thread and its counts: commits pushed, those that
    waited to be on disk, and the fsyncs that covered them."""

    def __init__(self, db: sqlite3.Connection, path: Path, apply: str, full: bool) -> None:
        self.db = db  # the journal's connection: this thread's alone once started
        self.path = path  # the journal's database file; the log is beside it
        self.apply = apply  # the statement that applies a round's rows (a JSON array: [op, *arguments] each)
        self.full = full
        self.commits = 0  # commits pushed (numbered in push order)
        self.synced_commits = 0  # commits that had to be on disk, waited for or not (what an order costs in syncs)
        self.fsyncs = 0  # fsyncs of the log: fewer than synced_commits when commits shared one
        self.rounds = 0  # SQLite transactions the writer made: fewer than commits when commits shared one
        self._queue: list[tuple[list[Statement], bool]] = []
        self._applied = 0  # commits committed to SQLite (and synced, when one of their round had to be)
        # (commit, called once it is applied or the writer has failed): a waiter's Event.set, or what
        # follows a commit nobody waits for (``then``: a venue order's send, ``execution.py``)
        self._waiting: list[tuple[int, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer: something to apply, or closing
        self._drained = threading.Condition(self._lock)  # a round ended (drain)
        self._applying = threading.Lock()  # held by the writer through a round (and a checkpoint's last copy)
        self._closing = False
        self._failed: JournalError | None = None
        self._fd: int | None = None  # the log, open
        self._log: tuple[int, int] = (0, 0)  # its device and inode
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Start the writer; open the log (SQLite has created it) and sync
        its directory entry unless syncing is off."""
        if self.full:
            self._open_log()
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> JournalError | None:
        """Why the writer stopped (no commit is applied any more), or None."""
        return self._failed

    def push(self, statements: list[Statement], synced: bool) -> int:
        """Hand over a commit (the journal's lock held, so that commits are
        numbered in the order the engine made them): its number when the
        caller must ``wait`` for it (``synced``), else 0."""
        with self._lock:
            if self._failed is not None:
                raise self._failed
            self.commits += 1
            self._queue.append((statements, synced))
            if len(self._queue) == 1:
                self._work.notify()
            if synced:
                self.synced_commits += 1
                return self.commits
            return 0

    def wait(self, commit: int) -> None:
        """Return once commit number ``commit`` is applied (and on disk,
        with ``full``); called without the journal's lock. The caller's turn
        goes on without it meanwhile."""
        step_aside()
        with self._lock:
            if self._applied >= commit:
                return
            if self._failed is not None:
                raise self._failed
            done = threading.Event()
            self._waiting.append((commit, done.set))
        done.wait()
        if self._applied < commit:
            assert self._failed is not None
            raise self._failed

    def then(self, commit: int, call: Callable[[], None]) -> None:
        """Call ``call`` once commit number ``commit`` is applied (and on
        disk, with ``full``), or once the writer has failed (``failed`` says
        which): on the writer's thread, or on the caller's when that is
        already so. The caller goes on at once."""
        with self._lock:
            ready = self._applied >= commit or self._failed is not None
            if not ready:
                self._waiting.append((commit, call))
        if ready:
            call()

    def awaited(self) -> bool:
        """Someone waits for a commit not yet on disk, or something follows it (``then``)."""
        return bool(self._waiting)

    def drain(self) -> None:
        """Return once every commit pushed so far is applied (a read sees them)."""
        with self._lock:
            upto = self.commits
            while self._applied < upto and self._failed is None and self._thread is not None:
                self._drained.wait()
            if self._failed is not None and self._applied < upto:
                raise self._failed

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No commit is applied meanwhile (a read, a checkpoint's last copy)."""
        with self._applying:
            yield

    def close(self) -> None:
        """Apply what is pushed, then end the writer and close the log."""
        with self._lock:
            self._closing = True
            self._work.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._work.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
                upto = self.commits
                if self._waiting:  # a round ends with the last commit someone waits for: not later
                    last = max(commit for commit, _ in self._waiting)
                    if last < upto:
                        keep = len(batch) - (upto - last)
                        batch, self._queue, upto = batch[:keep], batch[keep:], last
            try:
                with self._applying:
                    self._apply(batch)
                    if self.full and any(synced for _, synced in batch):
                        self._fsync()
            except JournalError as err:
                self._fail(err)
                return
            except Exception as err:  # noqa: BLE001 - a record that cannot be encoded: nothing more is written
                self._fail(JournalError(f"{self.path}: cannot write the journal: {err}"))
                return
            with self._lock:
                self._applied = upto
                self._drained.notify_all()
                ready = [waiting for waiting in self._waiting if waiting[0] <= upto]
                if ready:
                    self._waiting = [waiting for waiting in self._waiting if waiting[0] > upto]
            for _, call in ready:  # (without the lock: a call may hand a worker its next turn)
                call()

    def _apply(self, batch: list[tuple[list[Statement], bool]]) -> None:
        """The commits of a round in one SQLite transaction, in order, one
        statement for all of them."""
        rows: list[list[Any]] = []
        for statements, _ in batch:
            for op, args, how in statements:
                if how == ENCODE:
                    rows.append([op, *args[:-1], encode(args[-1])])
                elif how == MANY:
                    rows.extend([op, *one] for one in args)
                else:
                    rows.append([op, *args])
        text = _rows(rows)
        try:
            # One statement, so one transaction of its own (the connection is in
            # autocommit mode): no BEGIN and COMMIT around it, each of which gave
            # the interpreter's lock up and waited to take it back from a burst.
            # A statement that fails leaves nothing of itself behind.
            self.db.execute(self.apply, (text,))
        except sqlite3.Error as err:
            raise JournalError(f"{self.path}: cannot write the journal: {err}") from err
        self.rounds += 1

    def _fail(self, err: JournalError) -> None:
        """No commit is said to be applied any more: every waiter and every later push raises."""
        with self._lock:
            self._failed = err
            self._queue.clear()
            self._drained.notify_all()
            waiting, self._waiting = self._waiting, []
        for _, call in waiting:
            call()

    def _fsync(self) -> None:
        """One fsync of the log, for the round just committed."""
        try:
            now = os.stat(f"{self.path}-wal")
            if self._fd is None or (now.st_dev, now.st_ino) != self._log:  # (SQLite keeps it while open)
                self._open_log()
            assert self._fd is not None
            os.fsync(self._fd)
        except OSError as err:
            raise JournalError(f"{self.path}: cannot write the journal: {err}") from err
        self.fsyncs += 1

    def _open_log(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        fd = self._fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        st = os.fstat(fd)
        self._log = (st.st_dev, st.st_ino)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the log's name survives a power loss too
        finally:
            os.close(folder)
