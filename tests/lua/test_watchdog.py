"""The time budget: calls run with no hook; the watchdog's looks stop a call
that runs past its budget and never one that finished or ran less."""

from __future__ import annotations

import ctypes
import gc
import re
import time
import weakref
from typing import Any

import numpy as np
import pytest
from lupa import lua54

from engine_core.errors import StrategyBudgetError
from engine_core.lua.watchdog import Watchdog, address
from engine_core.model import State
from engine_core.runner import run
from engine_core.testing import wait_until, write_config
from tests.lua.conftest import Budget

_lua = ctypes.CDLL(lua54.__file__)
_lua.lua_gethook.argtypes = [ctypes.c_void_p]
_lua.lua_gethook.restype = ctypes.c_void_p

FUNCTIONS = "function close_watch() end\nfunction in_trade() end\n"


def main_hook(h: Any) -> int | None:
    """The hook set on the strategy's main Lua thread (None: none)."""
    return _lua.lua_gethook(address(h.strategy.sandbox.tools.main))


@pytest.mark.parametrize("mode, hooked", [("time", False), ("instructions", True)])
def test_a_call_runs_with_no_hook_on_the_time_budget(harness: Any, mode: str, hooked: bool) -> None:
    h = harness("function watch(ctx) ctx.log('x') end\n" + FUNCTIONS, budget=mode)
    seen = []
    h.view.log = lambda ts, message: seen.append(main_hook(h) is not None)
    h.feed(np.arange(1.0, 4.0))
    assert h.strategy.scan(State.WATCH, 0, 3) == (3, None)
    assert seen == [hooked] * 3


class Looks:
    """The watchdog's looks at chosen moments, on a clock the test moves: each
    ``ctx.log(seconds)`` of the script moves the clock, then the watchdog looks
    (the hook runs at the script's next instruction)."""

    def __init__(self, h: Any) -> None:
        self.now = 1000.0
        sandbox = h.strategy.sandbox
        sandbox.clock = lambda: self.now
        h.view.log = self.log
        self.stamp = sandbox.stamp

    def log(self, ts: Any, message: str) -> None:
        self.now += float(message)
        self.stamp.look()


def test_calls_each_within_the_budget_are_never_stopped_however_long_the_scan(harness: Any) -> None:
    code = "function watch(ctx) ctx.log(0.1); ctx.log(0.9) end\n" + FUNCTIONS  # two looks 0.9 s apart in each bar
    h = harness(code, budget="time", max_call_ms=1000)
    looks = Looks(h)
    h.feed(np.arange(1.0, 101.0))
    assert h.strategy.scan(State.WATCH, 0, 100) == (100, None)
    assert looks.now == pytest.approx(1100.0)  # 100 s in one call, never 1 s in one bar


def test_a_bar_seen_running_for_the_budget_is_stopped(harness: Any) -> None:
    code = "function watch(ctx) ctx.log(0.5); if ctx.index == 3 then ctx.log(0.5); ctx.log(0.5) end end\n"
    h = harness(code + FUNCTIONS, budget="time", max_call_ms=1000)
    Looks(h)
    h.feed(np.arange(1.0, 11.0))
    with pytest.raises(StrategyBudgetError, match=r"^strategy.lua:1: watch for TEST: time budget exceeded \(1000 ms"):
        h.strategy.scan(State.WATCH, 0, 10)


def test_a_look_as_a_call_ends_does_nothing(harness: Any) -> None:
    code = "function watch(ctx) if ctx.index == 2 then return 'setup' end end\n" + FUNCTIONS
    h = harness(code, budget="time", max_call_ms=1000)
    stamp = h.strategy.sandbox.stamp
    h.feed(np.arange(1.0, 4.0))
    for _ in range(3):  # the watchdog saw a call that then ended: its look comes late
        stamp.look()
        assert main_hook(h) is not None
        h.strategy.sandbox.clock = lambda: 1e9  # were the look taken for one, the call would seem far too long
        assert h.strategy.state() == {}  # the host's own calls into Lua
        assert h.strategy.scan(State.WATCH, 0, 3)[0] == 1
        assert main_hook(h) is None  # the hook ran once and unset itself


def test_a_coroutine_from_an_earlier_call_is_stopped_when_it_loops(harness: Any, budget: Budget) -> None:
    code = """
    local co
    function watch(ctx)
      if co == nil then
        co = coroutine.wrap(function() coroutine.yield(); while true do end end)
      end
      co()
    end
    """
    h = harness(code + FUNCTIONS, **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    assert h.strategy.scan(State.WATCH, 0, 1) == (1, None)  # runs it to its yield
    with pytest.raises(StrategyBudgetError, match=budget.message):
        h.strategy.scan(State.WATCH, 1, 2)


def test_a_runaway_halts_its_own_symbol_in_a_run(tmp_path: Any, budget: Budget) -> None:
    (tmp_path / "s.lua").write_text(
        "function watch(ctx)\n  if ctx.symbol == 'A' and ctx.index == 50 then while true do end end\nend\n" + FUNCTIONS
    )
    config = write_config(
        tmp_path / "c.toml",
        {
            "engine": {"symbols": ["A", "B"], "chunk": 1},
            "source": {"type": "simulated", "bars": 100},
            "strategy": {"host": "lua", "script": "s.lua", **budget.limits},
        },
    )
    result = run(config)
    assert re.fullmatch(f"s.lua:2: watch for A: {budget.message}", result.symbols["A"].halted or "")
    assert result.symbols["B"].halted is None


def test_a_call_that_waits_past_its_budget_is_not_stopped_one_that_computes_is(harness: Any) -> None:
    """The budget is the CPU time the call spends, not the time it takes: a
    bar waiting 0.5 s (a loaded machine, a callback) on a 0.1 s budget goes
    on; one computing for 0.5 s stops."""
    code = "function watch(ctx) for _ = 1, 25 do ctx.log('x'); local k = 0; for i = 1, 1000 do k = k + i end end end\n"
    h = harness(code + FUNCTIONS, budget="time", max_call_ms=100)
    h.view.log = lambda ts, message: time.sleep(0.02)  # 25 waits: 0.5 s, the Lua code running between them
    h.feed(np.arange(1.0, 3.0))
    assert h.strategy.scan(State.WATCH, 0, 2) == (2, None)
    h.view.log = lambda ts, message: _spin(0.02)  # the same 0.5 s, computed
    with pytest.raises(StrategyBudgetError, match=r"time budget exceeded \(100 ms"):
        h.strategy.scan(State.WATCH, 0, 2)


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_the_watchdog_looks_at_a_call_that_ran_its_budget_since_it_first_saw_it(harness: Any) -> None:
    h = harness(budget="time", max_call_ms=1000)
    slot = h.strategy.sandbox.stamp
    t = 1e9  # (the watchdog's own polls, on the real clock, are far from these)
    slot.call += 1  # a call runs
    slot.poll(t)
    slot.poll(t + 0.999)
    assert main_hook(h) is None  # seen running for less than its budget
    slot.poll(t + 1.0)
    assert main_hook(h) is not None
    get_state = h.strategy.ctx.lua.get_state  # a call the host makes into Lua outside a strategy call
    assert dict(get_state()) == {}  # (the hook sees no call and unsets itself)
    slot.poll(t + 1.1)
    assert main_hook(h) is None  # a quarter of the budget between two looks
    slot.poll(t + 1.25)
    assert main_hook(h) is not None
    get_state()
    slot.call += 2  # that call ended, another runs: seen from now on
    slot.poll(t + 2.0)
    slot.poll(t + 2.5)
    assert main_hook(h) is None
    slot.call += 1  # no call runs
    slot.poll(t + 10.0)
    assert main_hook(h) is None


def test_a_sandbox_that_has_gone_is_no_longer_polled_and_the_last_one_ends_the_thread(harness: Any) -> None:
    dog = Watchdog()
    first, second = harness(budget="time", max_call_ms=1000), harness(budget="time", max_call_ms=1000)
    dog.watch(first.strategy.sandbox.stamp)
    dog.watch(second.strategy.sandbox.stamp)
    thread = dog.thread
    assert thread is not None and thread.is_alive() and len(dog.slots) == 2
    kept = weakref.ref(second.strategy.sandbox.stamp)
    del first
    # its engine has gone: the sandbox, its runtime and its slot with it, once
    # collected (a poll holds a slot whose call began since the last one)
    wait_until(lambda: gc.collect() >= 0 and len(dog.slots) == 1, "the slot that went dropped at the next poll", 5.0)
    assert dog.slots[0]() is kept() and thread.is_alive()
    del second
    wait_until(lambda: gc.collect() >= 0 and not thread.is_alive(), "the thread ended with the last slot", 5.0)
    assert not thread.is_alive() and dog.thread is None and dog.slots == []


def test_the_polls_come_twice_as_often_while_a_call_runs(harness: Any) -> None:
    # A poll woken from its sleep costs CPU whatever it finds: half a budget
    # apart while no call runs, a quarter once one does (a runaway is looked
    # at within a quarter budget of running its budget).
    h = harness(budget="time", max_call_ms=40)
    dog = Watchdog()
    slot = h.strategy.sandbox.stamp
    dog.watch(slot)
    assert dog._poll() == pytest.approx(0.020)
    slot.call += 1  # a call runs (begun as the host begins one)
    slot.begun.append(slot)
    assert dog._poll() == pytest.approx(0.010)
    slot.call += 1  # it ended
    assert dog._poll() == pytest.approx(0.020)


def test_a_poll_looks_only_at_the_calls_begun_since_the_last_and_those_still_running(harness: Any) -> None:
    dog = Watchdog()
    sandboxes = [harness(budget="time", max_call_ms=1000).strategy.sandbox for _ in range(3)]
    for sandbox in sandboxes:
        dog.watch(sandbox.stamp)
    first, second, third = (sandbox.stamp for sandbox in sandboxes)
    assert first.begun is dog.begun
    dog._poll()
    assert dog.begun == [] and dog.watching == {}  # nothing began: nothing to look at
    inside = sandboxes[0].call(lambda: (dog._poll(), dict(dog.watching))[1])  # polled while its call runs
    assert inside == {first: None}
    dog._poll()
    assert dog.watching == {}  # let go at the first poll after it ended
    for slot in (first, second):  # two calls begin, one ends before the poll
        slot.call += 1
        slot.begun.append(slot)
    first.call += 1
    dog._poll()
    assert list(dog.watching) == [second] and dog.begun == []
    dog._poll()
    assert list(dog.watching) == [second]  # still running: still looked at
    second.call += 1
    dog._poll()
    assert dog.watching == {} and third not in dog.begun  # (third's calls, its init, began before the dog watched)
