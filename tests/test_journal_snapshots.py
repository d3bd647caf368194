"""Snapshots saved with ``soon`` (a bar's progress) and what a symbol's steps
write are committed by the journal's thread (between bursts), never over a
newer snapshot, and all of them at close; an intent takes what its symbol
holds with it; commits of what a restart cannot ask the venue for are
synced, the rest not."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from decimal import Decimal

import engine_core.journal as journal_module
import engine_core.journal_sync as journal_sync
from engine_core.journal import Journal
from engine_core.model import Order, Side
from engine_core.orders import OrderStatus


def read_back(path, timeout=10.0, until=lambda snaps: True):
    deadline = time.monotonic() + timeout
    while True:
        reader = Journal(path)
        try:
            snaps = reader.symbols()
        finally:
            reader.close()
        if until(snaps) or time.monotonic() > deadline:
            return snaps
        time.sleep(0.02)


def test_soon_snapshots_reach_the_file_while_the_engine_runs(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    try:
        for bar in range(1, 4):
            for symbol in ("A", "B"):
                journal.save_symbol(symbol, {"bars": bar}, soon=True)
        snaps = read_back(path, until=lambda s: s.get("A") == {"bars": 3} and s.get("B") == {"bars": 3})
        assert snaps == {"A": {"bars": 3}, "B": {"bars": 3}}
    finally:
        journal.close()


def test_a_snapshot_written_now_is_never_overwritten_by_an_older_waiting_one(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SNAPSHOT_DELAY", 3600.0)  # the thread never gets to it
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.save_symbol("A", {"bars": 1, "qty": "0"}, soon=True)
    journal.save_symbol("B", {"bars": 1}, soon=True)
    with journal.transaction():  # a fill's transaction writes its snapshot at once
        journal.save_symbol("A", {"bars": 1, "qty": "2"})
    journal.close()  # writes what still waits: B's snapshot, not A's older one
    assert read_back(path) == {"A": {"bars": 1, "qty": "2"}, "B": {"bars": 1}}


def test_close_writes_the_snapshots_still_waiting(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SNAPSHOT_DELAY", 3600.0)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.save_symbol("A", {"bars": 7}, soon=True)
    journal.close()
    assert read_back(path) == {"A": {"bars": 7}}


def count_syncs(monkeypatch):
    """The fsyncs the journal makes, counted (they still happen)."""
    syncs = []
    real = os.fsync

    def fsync(fd):
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    return syncs


def test_an_intent_and_a_fill_are_synced_and_what_the_venue_tells_again_is_not(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j.sqlite")
    syncs = count_syncs(monkeypatch)
    order = Order("e-A-1", "A", Side.BUY, Decimal(1), 1, "enter")
    journal.order(order, OrderStatus.INTENT)
    assert len(syncs) == 1  # on disk before it is sent
    journal.order(order, OrderStatus.SUBMITTED)
    journal.order(order, OrderStatus.ACCEPTED, venue_id="v1")
    assert len(syncs) == 1
    with journal.transaction():  # a fill is booked with the worker's snapshot, in one synced commit
        journal.fill("e-A-1", "A", 2, "1", OrderStatus.FILLED, qty="1", price="100")
        journal.save_symbol("A", {"qty": "1"})
    assert len(syncs) == 2
    journal.save_symbol("A", {"qty": "1", "bars": 3}, soon=True)
    journal.flush()
    journal.event("connection", None, 3, state="connected")
    assert len(syncs) == 2
    journal.close()
    j = Journal(tmp_path / "j.sqlite")
    assert j.orders()[0]["venue_id"] == "v1" and j.symbols() == {"A": {"qty": "1", "bars": 3}}
    j.close()


def test_a_journal_kept_with_sync_normal_never_syncs(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j.sqlite", sync="normal")
    syncs = count_syncs(monkeypatch)
    journal.order(Order("e-A-1", "A", Side.BUY, Decimal(1), 1, "enter"), OrderStatus.INTENT)
    journal.event("fill", "A", 2, qty="1")
    assert syncs == []
    journal.close()


ENTER_EVERY = """
class S:
    def watch(self, ctx):
        return "enter" if {every} and ctx.index % 4 == 0 else None
    def close_watch(self, ctx):
        return None
    def in_trade(self, ctx):
        return "exit"
"""


def journaled_run(tmp_path, orders: bool, broker: str, monkeypatch) -> tuple:
    """A live run of A on the scripted venue or the paper broker, with a
    journal kept as a live run keeps it: its result, its synced commits, and
    how many times a worker waited for the disk."""
    from engine_core.runner import build_engine
    from engine_core.testing import venue, write_config

    folder = tmp_path / ("orders" if orders else "none")
    folder.mkdir()
    (folder / "s.py").write_text(ENTER_EVERY.format(every=orders))
    rows = [["A", 60 * i, 100.0 + i % 3, 101.0 + i % 3, 99.0 + i % 3, 100.0 + i % 3, 1.0] for i in range(40)]
    table = {"type": "paper", "cash": 10000} if broker == "paper" else {"type": "scripted", "venue": "synced"}
    config = write_config(
        folder / "c.toml",
        {
            "engine": {"mode": "live", "symbols": ["A"]},  # a journal with journal_sync "full"
            "source": {"type": "replay", "bars": rows, "pace": 0.005},
            "strategy": {"host": "python", "class": "s.py:S", "params": {"x": 0}},
            "broker": table,
            "report": {"dir": "out"},
        },
    )
    venue("synced", reset=True)
    waits = []
    wait = journal_sync.GroupCommit.wait
    monkeypatch.setattr(journal_sync.GroupCommit, "wait", lambda self, n: waits.append(n) or wait(self, n))
    engine = build_engine(config)
    result = engine.run().symbols["A"]
    assert engine.journal is not None
    return result, engine.journal.synced_commits, len(waits)


def test_an_order_makes_at_most_two_synced_commits_its_intent_and_its_fill(tmp_path, monkeypatch):
    """Decision 5 of issue 22: an order syncs what a restart cannot ask the
    venue for (its intent before the send, its fill) and nothing else; its
    statuses, the transitions, stops and snapshots ride on those commits. A
    fill the symbol still holds when its next intent is written is synced
    with that intent (one commit for both). No step waits for the disk: the
    order is sent at a turn of its own once its intent is on disk
    (test_venue_send.py)."""
    _, start_up, waited = journaled_run(tmp_path, False, "scripted", monkeypatch)  # the journal's creation, recovery
    result, synced, waits = journaled_run(tmp_path, True, "scripted", monkeypatch)
    assert result.orders >= 10 and result.fills >= result.orders - 1  # the last may wait for a next bar
    assert result.orders <= synced - start_up <= result.orders + result.fills
    assert waits == waited


def test_a_paper_order_never_waits_for_the_disk(tmp_path, monkeypatch):
    """The paper broker keeps its orders in the journal, each written behind
    its intent, so a crash can never keep an order without its intent: the
    intent need not be on disk before the "send", and a paper session's
    worker never waits for the disk (a kill -9 at any point stays consistent:
    test_recovery.py)."""
    _, _, waited = journaled_run(tmp_path, False, "paper", monkeypatch)  # the journal's creation, recovery
    result, synced, waits = journaled_run(tmp_path, True, "paper", monkeypatch)
    assert result.orders >= 10 and result.fills >= result.orders - 1
    assert waits == waited
    assert synced >= 1  # the fills and intents still reach the disk synced, by the writer's rounds


class Symbol:
    """A symbol's worker as the journal sees it (``Journal.attach``): its
    state changes only in a step, holding its lock, on the thread ``running``
    names."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.bars = 0
        self.taken = 0

    def snapshot(self) -> dict:
        self.taken += 1
        return {"bars": self.bars}

    @contextmanager
    def step(self):
        with self.lock:
            self.running = threading.get_ident()
            try:
                yield
            finally:
                self.running = 0


def committed(path) -> tuple[set[str], dict]:
    """What another connection reads in the journal's file: the events' kinds, the snapshots."""
    db = sqlite3.connect(path)
    try:
        kinds = {kind for (kind,) in db.execute("SELECT kind FROM events")}
        snaps = {sym: json.loads(data) for sym, data in db.execute("SELECT symbol, data FROM symbols")}
    finally:
        db.close()
    return kinds, snaps


def attached(tmp_path, monkeypatch) -> tuple:
    """A journal whose thread never gets to what waits (``flush`` writes it),
    with symbol A's worker attached."""
    monkeypatch.setattr(journal_module, "SNAPSHOT_DELAY", 3600.0)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    a = Symbol()
    journal.attach("A", a)
    return path, journal, a


def test_a_bar_marked_in_a_step_is_taken_when_the_journal_writes_it(tmp_path, monkeypatch):
    path, journal, a = attached(tmp_path, monkeypatch)
    for _ in range(5):  # five bars: marked five times, taken once, as it is at the write
        with a.step():
            a.bars += 1
            assert journal.mark("A")
    assert a.taken == 0
    assert not journal.mark("A")  # not in A's step: the caller writes its snapshot itself
    journal.flush()
    assert a.taken == 1 and read_back(path) == {"A": {"bars": 5}}
    journal.close()


def test_what_a_step_writes_goes_over_together_with_one_snapshot(tmp_path, monkeypatch):
    """A step's transition, a simulated broker's record and the snapshot are
    handed over as one commit by the journal's thread; nothing before."""
    path, journal, a = attached(tmp_path, monkeypatch)
    commits = journal.commits
    with a.step():
        a.bars = 3
        with journal.transaction(synced=False, symbol="A"):
            journal.event("transition", "A", 3, frm="watch", to="close_watch", reason="setup")
            journal.mark("A")
        journal.put("paper:e-A-1", {"status": "working"}, synced=False, symbol="A")
    assert journal.commits == commits and committed(path) == (set(), {})  # held
    journal.flush()
    assert journal.commits == commits + 1 and a.taken == 1
    assert journal.get("paper:e-A-1") == {"status": "working"}  # (a read: once the writer has applied it)
    assert committed(path) == ({"transition"}, {"A": {"bars": 3}})
    journal.close()


def test_an_intent_in_a_step_takes_what_the_symbol_holds_with_it(tmp_path, monkeypatch):
    """The fill before it (synced without its worker waiting) and the
    snapshot are on disk, in the intent's commit, before the intent returns
    (what it is for is sent next)."""
    path, journal, a = attached(tmp_path, monkeypatch)
    synced = journal.synced_commits
    with a.step():
        a.bars = 7
        with journal.transaction(waits=False, symbol="A"):
            journal.fill("e-A-1", "A", 7, "1", OrderStatus.FILLED, qty="1", price="100")
            journal.mark("A")
        assert committed(path) == (set(), {})  # held
        journal.order(Order("x-A-2", "A", Side.SELL, Decimal(1), 8, "exit"), OrderStatus.INTENT)
        assert committed(path) == ({"fill", "intent"}, {"A": {"bars": 7}})
    assert journal.synced_commits == synced + 1  # one commit for both
    journal.close()


def test_the_journals_thread_writes_what_steps_hold_once_the_burst_is_over(tmp_path, monkeypatch):
    """A fill held in a step asks the journal's thread to write it at once,
    but not while turns run (``quiet``), unless they run for longer than
    ``QUIET_WAIT``."""
    path, journal, a = attached(tmp_path, monkeypatch)
    burst = threading.Event()
    burst.set()
    journal.quiet = lambda: not burst.is_set()
    with a.step():
        with journal.transaction(waits=False, symbol="A"):
            journal.fill("e-A-1", "A", 7, "1", OrderStatus.FILLED, qty="1", price="100")
    time.sleep(0.2)
    assert committed(path)[0] == set()  # the burst goes on: held
    burst.clear()
    journal.idle()  # as the engine's baton tells its listeners
    deadline = time.monotonic() + 10
    while committed(path)[0] != {"fill"} and time.monotonic() < deadline:
        time.sleep(0.01)
    assert committed(path)[0] == {"fill"}
    monkeypatch.setattr(journal_module, "QUIET_WAIT", 0.05)
    burst.set()  # a burst that never ends: written all the same
    with a.step():
        journal.event("transition", "A", 8, frm="close_watch", to="in_trade", reason="entry filled")
        journal.fill("e-A-1", "A", 8, "2", OrderStatus.FILLED, qty="1", price="100")  # (outside a transaction)
    deadline = time.monotonic() + 10
    while "transition" not in committed(path)[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "transition" in committed(path)[0]
    journal.close()


def test_a_snapshot_taken_in_a_step_never_overwrites_a_newer_one(tmp_path):
    """The worker writes a snapshot now outside a step (start-up) while the
    journal's thread hands over what steps held: whichever comes second, the
    row ends with the worker's newest state."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    a = Symbol()
    journal.attach("A", a)

    def worker():
        for bar in range(1, 301):
            if bar % 7 == 0:
                with a.lock:
                    a.bars = bar
                    journal.save_symbol("A", a.snapshot())
            else:
                with a.step():
                    a.bars = bar
                    journal.mark("A")

    threads = [threading.Thread(target=worker)] + [threading.Thread(target=journal.flush) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    assert read_back(path) == {"A": {"bars": 300}}


def test_a_snapshot_that_cannot_be_taken_is_said_on_that_symbols_next_mark(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    a, b = Symbol(), Symbol()
    journal.attach("A", a)
    journal.attach("B", b)

    def broken() -> dict:
        raise ValueError("no state")

    a.snapshot = broken  # type: ignore[method-assign]
    with a.step():
        journal.event("transition", "A", 1, frm="watch", to="close_watch", reason="setup")
        journal.mark("A")
    journal.flush()
    assert journal.events(kind="transition")  # what A's step wrote is not lost
    with b.step():
        journal.mark("B")  # other symbols go on
    with a.step():
        try:
            journal.mark("A")
        except journal_module.JournalError as err:
            assert "cannot take A's snapshot: no state" in str(err)
        else:
            raise AssertionError("the failure was not said")
    journal.close()


def test_a_snapshot_the_row_holds_already_is_not_written_again(tmp_path, monkeypatch):
    journal = Journal(tmp_path / "j.sqlite")
    journal.save_symbol("A", {"bars": 1})
    commits = journal.commits
    journal.save_symbol("A", {"bars": 1})  # a step's second snapshot, nothing changed
    assert journal.commits == commits
    try:
        with journal.transaction():
            journal.save_symbol("A", {"bars": 2})
            raise RuntimeError("the step failed")
    except RuntimeError:
        pass
    journal.save_symbol("A", {"bars": 2})  # the row was rolled back to bars 1: written
    journal.close()
    assert read_back(tmp_path / "j.sqlite") == {"A": {"bars": 2}}


def test_the_journals_thread_copies_the_log_into_the_file_while_the_engine_runs(tmp_path, monkeypatch):
    """Checkpoints are the journal's thread's, on its own connection: SQLite's
    automatic one ran inside the commit that crossed its limit, holding the
    journal's lock (and every worker waiting for it) through two syncs."""
    monkeypatch.setattr(journal_module, "CHECKPOINT_COMMITS", 20)
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    assert journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for k in range(25):  # no bar snapshots: the commits themselves call the thread
        journal.event("fill", "A", k, qty="1")

    def in_file() -> int:  # the database file alone, without the log
        db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]
        except sqlite3.OperationalError:  # not even the schema there yet
            return 0
        finally:
            db.close()

    deadline = time.monotonic() + 10
    while in_file() < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert in_file() >= 20
    journal.close()


def test_a_worker_busy_in_a_slow_call_does_not_hold_back_the_other_symbols_snapshots(tmp_path):
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    a, b = Symbol(), Symbol()
    journal.attach("A", a)
    journal.attach("B", b)
    a.bars = b.bars = 1
    for symbol in (a, b):
        with symbol.step():
            journal.mark("A" if symbol is a else "B")
    with a.lock:  # A waits for its broker meanwhile
        snaps = read_back(path, until=lambda s: "B" in s)
        assert snaps == {"B": {"bars": 1}}
    journal.close()  # A's is written at the latest when the journal closes
    assert read_back(path) == {"A": {"bars": 1}, "B": {"bars": 1}}


def test_a_write_that_must_be_synced_is_synced_in_a_transaction_that_need_not_be(tmp_path):
    """A halt (synced) written inside a transition's transaction (not synced
    on its own) is on disk when the transaction returns: the outermost
    transaction syncs what anything inside it asked to sync."""
    journal = Journal(tmp_path / "j.sqlite", sync="full")
    try:
        opened = journal.synced_commits  # (its schema)
        with journal.transaction(synced=False):
            journal.event("transition", "A", 1, frm="watch", to="close_watch", reason="setup")
        assert journal.synced_commits == opened
        with journal.transaction(synced=False):
            journal.event("transition", "A", 2, frm="close_watch", to="watch", reason="x")
            journal.event("halted", "A", 2, message="a halt")
        assert journal.synced_commits == opened + 1
        with journal.transaction(synced=False):
            with journal.transaction():
                journal.event("stops", "A", 3, stop_price=1.0)
        assert journal.synced_commits == opened + 2
    finally:
        journal.close()
