"""Hot reload: a changed script is swapped in keeping ``state``; a broken one
is rejected and the running version keeps going."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pytest

from engine_core.errors import StrategyBudgetError
from engine_core.model import State
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
    h.strategy.watcher.next_check = 0.0


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


def test_broken_version_is_rejected_and_the_old_one_keeps_running(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, "function watch(ctx) return 'setup' end\n")  # no close_watch, in_trade
    message = h.strategy.reload_if_changed()
    assert message is not None
    assert "reload rejected for TEST, the running version stays" in message
    assert "does not define function close_watch" in message
    assert reason(h) == "v1 2"
    rewrite(h, "function watch(ctx) return 'setup' end end\n")  # a syntax error
    assert "<eof> expected" in (h.strategy.reload_if_changed() or "")
    assert reason(h) == "v1 3"
    assert h.strategy.reload_if_changed() is None  # reported once per change


def test_unchanged_content_is_not_reloaded(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    rewrite(h, VERSION.format(tag="v1"))  # new mtime, same text
    assert h.strategy.reload_if_changed() is None


def test_checks_are_throttled(harness: Any) -> None:
    h = harness(VERSION.format(tag="v1"))
    h.strategy.watcher.next_check = 0.0
    assert h.strategy.reload_if_changed() is None
    h.path.write_text(VERSION.format(tag="v2") + "\n")
    assert h.strategy.reload_if_changed() is None  # within 0.5 s of the last look


def test_a_new_version_that_runs_away_as_it_loads_is_rejected(harness: Any, budget: Budget) -> None:
    h = harness(VERSION.format(tag="v1"), **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, "while true do end\n" + VERSION.format(tag="v2"))
    message = h.strategy.reload_if_changed() or ""
    assert re.search(f"reload rejected for TEST, the running version stays: strategy.lua:1: {budget.message}", message)
    assert reason(h) == "v1 2"


def test_a_new_version_that_runs_away_in_a_call_is_stopped(harness: Any, budget: Budget) -> None:
    h = harness(VERSION.format(tag="v1"), **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    assert reason(h) == "v1 1"
    rewrite(h, VERSION.format(tag="v2").replace("ctx.state.calls = ", "while true do end\n  ctx.state.calls = "))
    assert (h.strategy.reload_if_changed() or "").startswith("strategy.lua: reloaded for TEST")
    with pytest.raises(StrategyBudgetError, match=f"^strategy.lua:3: watch for TEST: {budget.message}$"):
        reason(h)
