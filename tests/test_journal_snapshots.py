"""Snapshots saved with ``soon`` (a bar's progress) are committed together by
the journal's thread, never over a newer snapshot, and all of them at close."""

from __future__ import annotations

import time

import engine_core.journal as journal_module
from engine_core.journal import Journal


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
