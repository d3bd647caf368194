"""Hot reload: a changed script is swapped in keeping ``state``; a broken one
is rejected and the running version keeps going."""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine_core.control import Command, deliver
from engine_core.errors import StrategyBudgetError, StrategyError
from engine_core.model import ErrorEvent, LogEvent, State
from engine_core.runner import Engine, build_engine
from engine_core.strategy import SymbolView
from engine_core.testing import MemorySink, journal_value, wait_until, write_config
from tests.lua.conftest import Budget

VERSION = """
function watch(ctx)
  ctx.state.calls = (ctx.state.calls or 0) + 1
  return {{action = "setup", reason = "{tag} " .. ctx.state.calls}}
end
function close_watch(ctx) end
function in_trade(ctx) end
"""


def rewrite(h: Any, code: str) -> None:
    """Replace the script and make the next poll look at it."""
    stat = h.path.stat()
    h.path.write_text(code)
    os.utime(h.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    h.strategy.watcher.due()


def reason(h: Any) -> str:
    return h.strategy.scan(State.WATCH, 0, 1)[1].reason


def test_reload_swaps_the_script_and_keeps_state(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    assert h.strategy.reload_if_changed() is None
    rewrite(h, VERSION.format(tag="v2"))
    message = h.strategy.reload_if_changed()
    assert message is not None and message.startswith("strategy.lua: reloaded for TEST")
    assert reason(h) == "v2 2"


def test_a_reload_command_looks_at_the_file_at_once(harness: Any) -> None:
    """A trader saves the script and sends ``reload`` within the watcher's
    half second: the command reads the file now instead of answering
    "unchanged" (the bar-time poll still waits for its interval)."""
    h = harness(VERSION.format(tag="v1"))
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, VERSION.format(tag="v2"))
    h.strategy.watcher.next_check = float("inf")  # the watcher has just looked
    assert h.strategy.reload_if_changed() is None
    message = h.strategy.reload_if_changed(force=True)
    assert message is not None and message.startswith("strategy.lua: reloaded for TEST")
    assert reason(h) == "v2 2"


def test_broken_version_is_rejected_and_the_old_one_keeps_running(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, "function watch(ctx) return 'setup' end\n")  # no close_watch, in_trade
    with pytest.raises(StrategyError) as rejected:
        h.strategy.reload_if_changed()
    assert str(rejected.value) == (
        "strategy.lua: reload rejected for TEST, the running version stays: "
        "strategy.lua: does not define function close_watch(ctx)"
    )
    assert reason(h) == "v1 2"
    rewrite(h, "function watch(ctx)\n  return 'setup' end end\n")  # a syntax error, named with its line
    with pytest.raises(StrategyError, match=r"stays: strategy\.lua:2: <eof> expected near 'end'$"):
        h.strategy.reload_if_changed()
    assert reason(h) == "v1 3"
    assert h.strategy.reload_if_changed() is None  # reported once per change


def test_unchanged_content_is_not_reloaded(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    rewrite(h, VERSION.format(tag="v1"))  # new mtime, same text
    assert h.strategy.reload_if_changed() is None


def test_checks_are_throttled(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    h.strategy.watcher.due()
    assert h.strategy.reload_if_changed() is None
    h.path.write_text(VERSION.format(tag="v2") + "\n")
    assert h.strategy.reload_if_changed() is None  # within 0.5 s of the last look


def test_every_symbol_of_a_script_shares_one_look_at_the_file_per_interval(
    harness: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every symbol's bar comes at the same instant and each polls the same
    file: it is looked at (a system call) once per interval for all of them,
    and each still reloads the new version, or reports a broken one, once."""
    h = harness(VERSION.format(tag="v1"))
    others = [h.host.bind(symbol, SymbolView(symbol, h.config.params, 50)) for symbol in ("B", "C")]
    strategies = [h.strategy, *others]
    looked: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda path, *a, **k: looked.append(str(path)) or real_stat(path, *a, **k))

    def poll_all() -> list[str | None]:
        for s in strategies:
            s.watcher.next_check = 0.0  # each symbol's interval has passed
        return [s.reload_if_changed() for s in strategies]

    rewrite(h, VERSION.format(tag="v2"))
    looked.clear()
    assert [m is not None and m.startswith("strategy.lua: reloaded for ") for m in poll_all()] == [True] * 3
    assert looked.count(str(h.path)) == 1 + 3  # one look, then each symbol reads the new text (read_script's stat)
    looked.clear()
    assert poll_all() == [None, None, None]  # within the interval: the look is shared, nothing read again
    assert looked == []
    rewrite(h, "function watch(ctx) return 'setup' end\n")  # broken: each symbol says so once
    for s in strategies:
        with pytest.raises(StrategyError, match="reload rejected for "):
            s.watcher.next_check = 0.0
            s.reload_if_changed()
    assert poll_all() == [None, None, None]


def test_a_new_version_that_runs_away_as_it_loads_is_rejected(harness: Any, budget: Budget) -> None:
    h = harness(VERSION.format(tag="v1"), **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, "while true do end\n" + VERSION.format(tag="v2"))
    with pytest.raises(StrategyError) as rejected:
        h.strategy.reload_if_changed()
    assert re.search(
        f"reload rejected for TEST, the running version stays: strategy.lua:1: {budget.message}", str(rejected.value)
    )
    assert reason(h) == "v1 2"


def test_a_new_version_that_runs_away_in_a_call_is_stopped(harness: Any, budget: Budget) -> None:
    h = harness(VERSION.format(tag="v1"), **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, VERSION.format(tag="v2").replace("ctx.state.calls = ", "while true do end\n  ctx.state.calls = "))
    assert (h.strategy.reload_if_changed() or "").startswith("strategy.lua: reloaded for TEST")
    with pytest.raises(StrategyBudgetError, match=f"^strategy.lua:3: watch for TEST: {budget.message}$"):
        reason(h)


# ------------------------------------------------------------ in a running engine

LIVE_VERSION = """
function watch(ctx) return nil end
function close_watch(ctx) end
function in_trade(ctx) end
-- {tag}
"""


@contextlib.contextmanager
def running(tmp_path: Path, *, reload: bool) -> Iterator[tuple[Engine, MemorySink, Path]]:
    """A live engine on symbol A with the Lua script ``tmp_path/s.lua``; its sink and journal."""
    (tmp_path / "s.lua").write_text(LIVE_VERSION.format(tag="v1"))
    cfg = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"id": "reloads", "mode": "live", "symbols": ["A"], "state_dir": str(tmp_path / "state")},
            "source": {"type": "simulated", "bars": 0, "pace": 0.003},
            "strategy": {"host": "lua", "script": "s.lua", "reload": reload},
            "broker": {"type": "paper"},
            "sinks": [{"type": "memory"}],
        },
    )
    engine = build_engine(cfg)
    sink = engine.bus.sinks[0]
    assert isinstance(sink, MemorySink)
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: engine.workers and engine.workers["A"].bars_done > 3, "bars")
        yield engine, sink, tmp_path / "state" / "reloads.sqlite"
    finally:
        engine.stop_event.set()
        thread.join(30)
    assert not thread.is_alive()


def journaled(journal: Path, kind: str) -> list[dict[str, Any]]:
    rows = journal_value(journal, f"SELECT json_group_array(data) FROM events WHERE kind = '{kind}'", "[]")
    return [json.loads(data) for data in json.loads(rows)]


def errors(sink: MemorySink) -> list[ErrorEvent]:
    return [e for e in list(sink.events) if isinstance(e, ErrorEvent)]


def test_a_reload_in_a_run_is_a_log_line_and_a_journal_entry_and_a_rejected_one_an_error(tmp_path: Path) -> None:
    with running(tmp_path, reload=True) as (engine, sink, journal):
        touch(tmp_path / "s.lua", LIVE_VERSION.format(tag="v2"))
        wait_until(lambda: journaled(journal, "reload"), "the reload journaled")
        (entry,) = journaled(journal, "reload")
        done = entry["result"]
        assert done.startswith("s.lua: reloaded for A (sha256 ")
        wait_until(lambda: any(isinstance(e, LogEvent) and e.message == done for e in list(sink.events)), "a log line")
        assert errors(sink) == []  # a success is never an error

        touch(tmp_path / "s.lua", "function watch(ctx)\n  return nil end end\n")
        wait_until(lambda: errors(sink), "the rejection")
        (rejected,) = errors(sink)
        assert (rejected.kind, rejected.symbol) == ("reload", "A")
        assert rejected.message == (
            "s.lua: reload rejected for A, the running version stays: s.lua:2: <eof> expected near 'end'"
        )
        assert [e["result"] for e in journaled(journal, "reload")] == [done]


def test_a_reload_command_answers_a_rejected_version_with_an_error_and_a_success_with_its_reply(tmp_path: Path) -> None:
    with running(tmp_path, reload=False) as (engine, sink, journal):
        watcher = engine.workers["A"].strategy.watcher  # type: ignore[attr-defined]
        touch(tmp_path / "s.lua", "function watch(ctx)\n  return nil end end\n")
        watcher.due()  # the file is looked at most every 0.5 s: look now
        (reply,) = deliver(engine, Command("reload", "A")).values()
        with pytest.raises(StrategyError, match=r"^s\.lua: reload rejected for A, .*: s\.lua:2: <eof> expected"):
            reply.result(30)
        touch(tmp_path / "s.lua", LIVE_VERSION.format(tag="v3"))
        watcher.due()
        (reply,) = deliver(engine, Command("reload", "A")).values()
        done = reply.result(30)
        assert done.startswith("s.lua: reloaded for A (sha256 ")
        assert [(e["command"], e["result"]) for e in journaled(journal, "control")] == [("reload", done)]
        assert errors(sink) == []


def touch(path: Path, code: str) -> None:
    stat = path.stat()
    path.write_text(code)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
