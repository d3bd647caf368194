"""One engine per journal: a second run of the same config is refused before
it connects; a run that ended, or was killed, leaves nothing to refuse."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from engine_core.errors import JournalError
from engine_core.journal import Journal
from engine_core.testing import (
    exited,
    journal_value,
    python_strategy,
    run_engine,
    start_engine,
    wait_until,
    write_config,
)


def _live_config(tmp_path: Path) -> Path:
    strategy = python_strategy(tmp_path, watch="return 'enter' if ctx.index % 10 == 0 else None")
    return write_config(
        tmp_path / "c.toml",
        {
            "engine": {"mode": "live", "id": "one", "symbols": ["A"]},
            "source": {"type": "simulated", "bars": 0, "pace": 0.002},
            "strategy": strategy,
            "sinks": [{"type": "log", "path": str(tmp_path / "events.log")}],
            "report": {"dir": "out"},
        },
    )


def _wait_for_start(journal: Path, proc, starts: int) -> None:
    """Until the run ``proc`` (start number ``starts`` on this journal) has recovered its symbol."""
    recovered = "SELECT count(*) FROM events WHERE kind = 'recovered'"
    wait_until(lambda: journal_value(journal, recovered, 0) >= starts, f"start {starts}", stop_if=exited(proc))


def test_a_second_run_of_the_same_config_is_refused_while_the_first_runs(tmp_path: Path):
    cfg = _live_config(tmp_path)
    journal = tmp_path / ".engine" / "one.sqlite"
    first = start_engine("run", "-c", str(cfg))
    try:
        _wait_for_start(journal, first, 1)
        second = run_engine("run", "-c", str(cfg))
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"error: {cfg}: {journal}: in use by another engine (pid {first.pid}); stop it, "
            "or give this config its own [engine] id or state_dir"
        ]
        assert "trading on" not in second.stdout  # refused before connecting
        # the readers stay open to all while it runs
        reader = Journal(journal)
        reader.close()
        assert run_engine("status", "-c", str(cfg)).returncode == 0
    finally:
        first.send_signal(signal.SIGINT)
        _, err = first.communicate(timeout=30)
    assert first.returncode == 0, err
    # stopped: the next run takes the journal over
    third = start_engine("run", "-c", str(cfg))
    try:
        _wait_for_start(journal, third, 2)  # not refused: the first run released its lock
    finally:
        third.kill()  # kill -9: the lock goes with the process
        third.communicate(timeout=30)
    fourth = start_engine("run", "-c", str(cfg))
    try:
        _wait_for_start(journal, fourth, 3)  # not refused: the killed run's lock went with it
    finally:
        fourth.kill()
        fourth.communicate(timeout=30)


def test_the_lock_is_taken_by_runs_only(tmp_path: Path):
    path = tmp_path / "j.sqlite"
    run = Journal(path, exclusive=True)
    try:
        Journal(path).close()  # a reader: engine status, the dashboard
        with pytest.raises(JournalError, match=f"in use by another engine \\(pid {os.getpid()}\\)"):
            Journal(path, exclusive=True)
    finally:
        run.close()
    Journal(path, exclusive=True).close()
