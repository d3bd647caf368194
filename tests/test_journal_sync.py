"""The journal's writer and group commit (journal_sync.py): synced commits
made while an fsync runs share the next one, each writer returns only once an
fsync that began after its commit has ended, a failed fsync fails every
commit after it, a commit that returned survives a kill -9, and the log is
started over after each checkpoint, however busy the writers."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from decimal import Decimal

import pytest

import engine_core.journal_sync as journal_sync
from engine_core.errors import JournalError
from engine_core.journal import Journal
from engine_core.model import Order, Side
from engine_core.orders import OrderStatus


def intent(journal: Journal, client_id: str) -> None:
    """An order's intent: a synced write of its own (no transaction)."""
    journal.order(Order(client_id, "A", Side.BUY, Decimal(1), 1, "enter"), OrderStatus.INTENT)


class Disk:
    """``os.fsync`` watched: for each fsync, what the journal's file held
    (committed) when it began, and whether it has ended; the first one can
    be held until released."""

    def __init__(self, path, monkeypatch: pytest.MonkeyPatch, hold_first: bool = False) -> None:
        self.began: list[set[str]] = []  # per fsync: the commits (their keys) made when it began
        self.ended: list[set[str]] = []  # the same, once it has ended
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        real = os.fsync

        def fsync(fd: int) -> None:
            began = committed(path)
            self.began.append(began)
            self.entered.set()
            self.release.wait()
            real(fd)
            self.ended.append(began)

        monkeypatch.setattr(journal_sync.os, "fsync", fsync)

    def covers(self, key: str) -> bool:
        """An fsync that began after ``key`` was committed has ended."""
        return any(key in covered for covered in list(self.ended))


def committed(path) -> set[str]:
    """What the journal's file holds, as another connection reads it: each
    order's client id and each fill's ``symbol/ts``."""
    reader = sqlite3.connect(path)
    try:
        orders = {cid for (cid,) in reader.execute("SELECT client_id FROM orders")}
        fills = {f"{s}/{ts}" for s, ts in reader.execute("SELECT symbol, ts FROM events WHERE kind='fill'")}
    finally:
        reader.close()
    return orders | fills


def test_commits_made_while_an_fsync_runs_share_the_next_one(tmp_path, monkeypatch):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    opened = journal.fsyncs  # (its schema's)
    disk = Disk(path, monkeypatch, hold_first=True)
    returned: dict[str, bool] = {}  # client id -> an fsync that began after its commit had ended when it returned

    def write(client_id: str) -> None:
        intent(journal, client_id)
        returned[client_id] = disk.covers(client_id)

    first = threading.Thread(target=write, args=("e-A-1",))
    first.start()
    assert disk.entered.wait(10)  # the first commit's fsync runs (held)
    before = journal.commits
    others = [threading.Thread(target=write, args=(f"e-A-{k}",)) for k in range(2, 6)]
    for t in others:
        t.start()
    while journal.commits < before + 4:  # all four committed while the first fsync runs
        threading.Event().wait(0.001)
    assert returned == {}  # none of them is on disk yet: the fsync running began before their commits
    disk.release.set()
    for t in [first, *others]:
        t.join(10)
    assert len(disk.began) == 2 and journal.fsyncs - opened == 2  # five synced commits, two fsyncs
    assert returned == {f"e-A-{k}": True for k in range(1, 6)}, "returned before its commit was synced"
    journal.close()


def test_workers_committing_at_once_each_return_after_an_fsync_that_began_after_their_commit(tmp_path, monkeypatch):
    """Intents (a write of their own) and fills (in a transaction) alike."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    disk = Disk(path, monkeypatch)
    failures = []

    def worker(symbol: str) -> None:
        for k in range(25):
            if k % 2:
                with journal.transaction():
                    journal.event("fill", symbol, k, qty="1")
                key = f"{symbol}/{k}"
            else:
                key = f"e-{symbol}-{k}"
                intent(journal, key)
            if not disk.covers(key):
                failures.append(key)

    threads = [threading.Thread(target=worker, args=(f"S{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    synced = journal.synced_commits
    journal.close()
    assert failures == []
    assert journal.fsyncs <= synced
    again = Journal(tmp_path / "j.sqlite")
    assert (len(again.orders()), len(again.events(kind="fill"))) == (8 * 13, 8 * 12)
    again.close()


def test_a_writer_waiting_for_the_disk_gives_up_its_turn_first(tmp_path, monkeypatch):
    """An intent (a synced write outside a transaction) as a fill (a synced
    transaction): the next symbol's turn begins while it waits (baton.py)."""
    journal = Journal(tmp_path / "j.sqlite")
    aside = []
    monkeypatch.setattr(journal_sync, "step_aside", lambda: aside.append(len(aside)))
    intent(journal, "e-A-1")
    assert len(aside) == 1
    with journal.transaction():
        journal.fill("e-A-1", "A", 2, "1", OrderStatus.FILLED, qty="1", price="100")
    assert len(aside) == 2
    journal.order(Order("e-A-1", "A", Side.BUY, Decimal(1), 1, "enter"), OrderStatus.SUBMITTED)
    assert len(aside) == 2  # not synced: no wait, the turn goes on
    journal.close()


def test_a_fill_is_synced_without_waiting_and_the_next_intent_waits_for_it(tmp_path, monkeypatch):
    """A fill's commit (``waits=False``) is synced by the writer's next
    fsync while its worker goes on; whatever the worker sends next has an
    intent, which returns only once an fsync covering the fill has ended."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    disk = Disk(path, monkeypatch, hold_first=True)
    aside = []
    monkeypatch.setattr(journal_sync, "step_aside", lambda: aside.append(len(aside)))
    synced = journal.synced_commits

    def fill() -> None:
        with journal.transaction(waits=False):
            journal.fill("e-A-1", "A", 7, "1", OrderStatus.FILLED, qty="1", price="100")

    booked = threading.Thread(target=fill)
    booked.start()
    booked.join(5)
    assert not booked.is_alive() and aside == []  # not waited for (its fsync is held)
    assert journal.synced_commits == synced + 1  # synced all the same
    assert disk.entered.wait(10)  # its fsync runs (held) while the worker goes on
    sent = threading.Thread(target=intent, args=(journal, "x-A-2"))
    sent.start()
    sent.join(0.2)
    assert sent.is_alive()  # the exit's intent waits
    disk.release.set()
    sent.join(10)
    assert disk.covers("A/7") and disk.covers("x-A-2")
    journal.close()


def test_an_intent_nobody_waits_for_is_followed_once_an_fsync_that_began_after_it_has_ended(tmp_path, monkeypatch):
    """A venue order's intent in a live step (``then``): the writer goes on at
    once, and what follows (the order's send) is called once the intent is
    on disk, on the writer's thread; at once when that is so already."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    disk = Disk(path, monkeypatch, hold_first=True)
    followed: list[tuple[str, bool, str]] = []  # client id, on disk then, the thread

    def then(client_id: str) -> None:
        followed.append((client_id, disk.covers(client_id), threading.current_thread().name))

    order = Order("e-A-1", "A", Side.BUY, Decimal(1), 1, "enter")
    journal.order(order, OrderStatus.INTENT, then=lambda: then("e-A-1"))  # returns with its fsync held
    assert disk.entered.wait(10)
    assert followed == []  # not on disk yet: nothing follows
    disk.release.set()
    journal.drain()
    assert followed == [("e-A-1", True, "journal-writer")]
    journal._group.then(journal.commits, lambda: then("e-A-1"))  # on disk already: called at once, here
    assert followed[-1] == ("e-A-1", True, threading.current_thread().name)
    journal.close()


def test_what_follows_an_intent_is_told_when_the_journal_fails_before_it_is_on_disk(tmp_path, monkeypatch):
    """The journal fails with the intent not on disk: what follows is still
    called (so the order is settled), and finds the journal failed (so the
    order is never sent: ``execution.send_synced``)."""
    journal = Journal(tmp_path / "j.sqlite")

    def fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(journal_sync.os, "fsync", fsync)
    told = threading.Event()
    failed: list[object] = []
    order = Order("e-A-1", "A", Side.BUY, Decimal(1), 1, "enter")
    journal.order(order, OrderStatus.INTENT, then=lambda: (failed.append(journal.failed), told.set()))
    assert told.wait(10)
    assert isinstance(failed[0], JournalError) and "Input/output error" in str(failed[0])
    journal.close()


def test_after_a_failed_fsync_no_commit_is_said_to_be_written(tmp_path, monkeypatch):
    """Linux may drop the pages an fsync failed to write and report the next
    fsync as a success: the journal does not ask again, it fails, and every
    later write raises (the engine stops sending)."""
    journal = Journal(tmp_path / "j.sqlite")
    real = os.fsync
    calls = []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(journal_sync.os, "fsync", fsync)
    with pytest.raises(JournalError, match="cannot write the journal"):
        intent(journal, "e-A-1")
    with pytest.raises(JournalError, match="cannot write the journal"):
        intent(journal, "e-A-2")
    assert len(calls) == 1
    with pytest.raises(JournalError, match="cannot write the journal"):  # nor one that need not be synced
        journal.order(Order("e-A-2", "A", Side.BUY, Decimal(1), 1, "enter"), OrderStatus.SUBMITTED)
    journal.close()


WRITER = """
import os, signal, sys, threading
from decimal import Decimal
from engine_core.journal import Journal
from engine_core.model import Order, Side
from engine_core.orders import OrderStatus

journal = Journal(sys.argv[1])
said = threading.Lock()
count = [0]

def worker(symbol):
    for k in range(1000):
        cid = f"e-{symbol}-{k}"
        journal.order(Order(cid, symbol, Side.BUY, Decimal(1), 1, "enter"), OrderStatus.INTENT)
        with said:
            os.write(1, (cid + "\\n").encode())  # returned: the engine would send it now
            count[0] += 1
            if count[0] == 150:
                os.kill(os.getpid(), signal.SIGKILL)

threads = [threading.Thread(target=worker, args=(s,)) for s in ("A", "B", "C", "D")]
for t in threads:
    t.start()
for t in threads:
    t.join()
"""


def test_a_kill_right_after_synced_commits_return_finds_every_one_of_them(tmp_path):
    path = tmp_path / "j.sqlite"
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    returned = proc.stdout.split()
    assert len(returned) == 150
    journal = Journal(path)
    kept = {row["client_id"] for row in journal.orders()}
    journal.close()
    assert set(returned) <= kept


def log_header(path) -> tuple[int, int]:
    """The write-ahead log's checkpoint sequence and first salt: both change
    when SQLite starts the log over."""
    with open(f"{path}-wal", "rb") as log:
        return struct.unpack(">II", log.read(20)[12:20])


class Meanwhile:
    """The checkpointer's connection, whose first copy of the log misses the
    last commits, as one that workers committed to while it copied: a
    reader holds the log as it was before them while it copies."""

    def __init__(self, path, journal: Journal) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.journal = journal
        self.calls = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.calls += 1
        if self.calls > 1:
            return self.db.execute(sql)
        reader = sqlite3.connect(self.path, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM events").fetchone()
        for k in range(5):
            self.journal.event("transition", "A", k, frm="watch", to="close_watch", reason="setup")
        cursor = self.db.execute(sql)
        reader.execute("COMMIT")
        reader.close()
        return cursor

    def close(self) -> None:
        self.db.close()


def test_the_log_starts_over_after_a_checkpoint_though_commits_came_while_it_copied(tmp_path):
    """SQLite starts the log over only when a commit finds all of it copied
    into the file: with workers committing while the journal's thread
    copied it, that never happened, and the log grew for the whole session."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    for k in range(30):
        intent(journal, f"e-A-{k}")
    before = log_header(path)
    meanwhile = Meanwhile(path, journal)
    journal._checkpoint(meanwhile)  # type: ignore[arg-type]  # what the journal's thread runs
    size = os.path.getsize(f"{path}-wal")
    intent(journal, "e-A-30")  # the next commit
    after = log_header(path)
    assert after[0] == before[0] + 1 and after[1] != before[1]  # started over
    assert os.path.getsize(f"{path}-wal") == size  # written again from its start, not appended to
    meanwhile.close()
    journal.close()
    again = Journal(path)
    assert len(again.orders()) == 31 and len(again.events(kind="transition")) == 5
    again.close()
