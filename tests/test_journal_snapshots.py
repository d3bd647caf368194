"""Snapshots saved with ``soon`` (a bar's progress) are committed together by
the journal's thread, never over a newer snapshot, and all of them at close;
commits of what a restart cannot ask the venue for are synced, the rest not."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from decimal import Decimal

import engine_core.journal as journal_module
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


def journaled_run(tmp_path, orders: bool):
    from engine_core.runner import build_engine
    from engine_core.testing import write_config

    folder = tmp_path / ("orders" if orders else "none")
    folder.mkdir()
    (folder / "s.py").write_text(ENTER_EVERY.format(every=orders))
    rows = [["A", 60 * i, 100.0 + i % 3, 101.0 + i % 3, 99.0 + i % 3, 100.0 + i % 3, 1.0] for i in range(40)]
    config = write_config(
        folder / "c.toml",
        {
            "engine": {"symbols": ["A"], "journal": True},  # journal_sync "full", as a live run
            "source": {"type": "replay", "bars": rows},
            "strategy": {"host": "python", "class": "s.py:S", "params": {"x": 0}},
            "broker": {"type": "paper", "cash": 10000},
            "report": {"dir": "out"},
        },
    )
    engine = build_engine(config)
    result = engine.run().symbols["A"]
    assert engine.journal is not None
    return result, engine.journal.synced_commits


def test_an_order_makes_two_synced_commits_its_intent_and_its_fill(tmp_path):
    """Decision 5 of issue 22: an order syncs what a restart cannot ask the
    venue for (its intent before the send, its fill) and nothing else; its
    statuses, the transitions, stops and snapshots ride on those commits."""
    _, start_up = journaled_run(tmp_path, orders=False)  # the journal's creation, the recovery event
    result, synced = journaled_run(tmp_path, orders=True)
    assert result.orders >= 10 and result.fills >= result.orders - 1  # the last may wait for a next bar
    assert synced - start_up == result.orders + result.fills


class Symbol:
    """A worker's state as ``save_symbol_later`` sees it: changed only while its lock is held."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bars = 0
        self.taken = 0

    def snapshot(self) -> dict:
        self.taken += 1
        return {"bars": self.bars}


def test_a_bar_marked_for_later_is_taken_when_the_journal_writes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(journal_module, "SNAPSHOT_DELAY", 3600.0)  # the thread never gets to it
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    a = Symbol()
    for _ in range(5):  # five bars: marked five times, taken once, as it is at the write
        with a.lock:
            a.bars += 1
            journal.save_symbol_later("A", a.snapshot, a.lock)
    assert a.taken == 0
    journal.flush()
    assert a.taken == 1 and read_back(path) == {"A": {"bars": 5}}
    journal.save_symbol_later("A", a.snapshot, a.lock)
    journal.save_symbol("A", {"bars": 5, "qty": "1"})  # written now: the mark is taken away
    journal.close()
    assert a.taken == 1 and read_back(path) == {"A": {"bars": 5, "qty": "1"}}


def test_a_snapshot_taken_for_later_never_overwrites_one_its_worker_wrote_since(tmp_path):
    """The worker writes its snapshot now (an order, a fill) while the
    journal's thread takes the marked ones: whichever comes second, the row
    ends with the worker's newest state."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    a = Symbol()

    def worker():
        for bar in range(1, 301):
            with a.lock:
                a.bars = bar
                if bar % 7 == 0:
                    journal.save_symbol("A", a.snapshot())
                else:
                    journal.save_symbol_later("A", a.snapshot, a.lock)

    threads = [threading.Thread(target=worker)] + [threading.Thread(target=journal.flush) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal.close()
    assert read_back(path) == {"A": {"bars": 300}}


def test_a_snapshot_that_cannot_be_taken_is_said_on_that_symbols_next_mark(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")

    def broken() -> dict:
        raise ValueError("no state")

    journal.save_symbol_later("A", broken, threading.Lock())
    journal.flush()
    journal.save_symbol("B", {"bars": 1})  # other symbols go on
    try:
        journal.save_symbol_later("A", broken, threading.Lock())
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
    a.bars = b.bars = 1
    journal.save_symbol_later("A", a.snapshot, a.lock)
    journal.save_symbol_later("B", b.snapshot, b.lock)
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
