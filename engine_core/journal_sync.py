"""The journal's group commit: a commit that must be on disk before the
engine acts waits for one fsync of the write-ahead log that began after
it, and the commits waiting together share that fsync.

The journal commits with SQLite's ``synchronous=NORMAL``: COMMIT writes the
transaction's frames into ``<journal>-wal`` and returns without syncing (the
operating system holds them: a kill -9 loses nothing). A commit the journal
says must be synced then calls :meth:`GroupCommit.wait` without the
journal's lock: the worker steps aside (its turn's successors run their
bars, and commit, meanwhile) and the first waiter with no fsync running
becomes the leader. It notes how many commits are made (each one's frames
are written by then), fsyncs the log, and wakes everyone waiting: those
covered return, and one of the others leads the next round, for all the
commits made while the last fsync ran. So a burst of orders costs a few
fsyncs in a row, not one per order, and no commit waits behind a fsync that
began before it was made.

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
  on every synced commit raises, none is told it is on disk.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine_core.baton import step_aside
from engine_core.errors import JournalError


class GroupCommit:
    """Counts a journal's commits and syncs the ones that must be on disk
    (none unless ``full``), several to an fsync."""

    def __init__(self, path: Path, full: bool) -> None:
        self.path = path  # the journal's database file; the log is beside it
        self.full = full
        self.commits = 0  # commits made (counted under the journal's lock, in commit order)
        self.synced_commits = 0  # commits that waited to be on disk (what an order costs in syncs)
        self.fsyncs = 0  # fsyncs of the log: fewer than synced_commits when commits shared one
        self._synced = 0  # commits known to be on disk
        self._syncing = False  # a leader's fsync runs
        self._done = threading.Condition(threading.Lock())  # a round ended: waiters look again
        self._failed = ""  # why an fsync failed: no commit is said to be on disk any more
        self._fd: int | None = None  # the log, open
        self._log: tuple[int, int] = (0, 0)  # its device and inode

    def open(self) -> None:
        """Open the log (SQLite has created it) and sync its directory entry;
        nothing unless ``full``."""
        if self.full:
            self._open_log()

    def committed(self, synced: bool) -> int:
        """Count a commit just made (the journal's lock held): its number
        when it must be on disk before the writer goes on (``wait``), else 0."""
        self.commits += 1
        if synced and self.full:
            self.synced_commits += 1
            return self.commits
        return 0

    def wait(self, commit: int) -> None:
        """Return once commit number ``commit`` is on disk (called without
        the journal's lock). The caller's turn goes on without it meanwhile."""
        step_aside()
        done = self._done
        with done:
            while self._synced < commit:
                if self._failed:
                    raise JournalError(self._failed)
                if self._syncing:
                    done.wait()
                    continue
                self._syncing = True  # this thread leads the round
                upto = self.commits  # each of these commits is written to the log by now
                done.release()
                try:
                    self._fsync()
                finally:
                    done.acquire()
                    self._syncing = False
                    done.notify_all()
                self._synced = max(self._synced, upto)

    def _fsync(self) -> None:
        """One fsync of the log (the leader, no lock held)."""
        try:
            now = os.stat(f"{self.path}-wal")
            if self._fd is None or (now.st_dev, now.st_ino) != self._log:  # (SQLite keeps it while open)
                self._open_log()
            assert self._fd is not None
            os.fsync(self._fd)
        except OSError as err:
            self._failed = f"{self.path}: cannot write the journal: {err}"
            raise JournalError(self._failed) from err
        self.fsyncs += 1

    def _open_log(self) -> None:
        self.close()
        fd = self._fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        st = os.fstat(fd)
        self._log = (st.st_dev, st.st_ino)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the log's name survives a power loss too
        finally:
            os.close(folder)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
