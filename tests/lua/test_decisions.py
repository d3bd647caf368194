"""Decisions from Lua: parsed per the contract; failures name script, function, line, symbol."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from engine_core.errors import StrategyError
from engine_core.model import Side, State

FUNCTIONS = """
function close_watch(ctx)
  if ctx.index == 3 then return {action = "enter", side = "sell", qty = 2, stop_price = 9.5, reason = "r"} end
end
function in_trade(ctx)
  if ctx.close() > 4 then return "exit" end
end
"""


def test_scan_stops_at_the_first_decision(harness: Any) -> None:
    h = harness("function watch(ctx) if ctx.close() >= 3 then return 'setup' end end" + FUNCTIONS)
    h.feed(np.arange(1.0, 7.0))
    s = h.strategy
    assert s.scan(State.WATCH, 0, 2) == (2, None)
    k, d = s.scan(State.WATCH, 0, 6)
    assert (k, d.action) == (2, "setup")
    k, d = s.scan(State.CLOSE_WATCH, 2, 3)  # the same bar again, as the worker asks after a setup
    assert (k, d.side, d.qty, d.stop_price, d.reason) == (2, Side.SELL, Decimal(2), 9.5, "r")
    assert s.scan(State.IN_TRADE, 3, 6)[0] == 4
    assert s.scan(State.IN_TRADE, 0, 3) == (3, None)


@pytest.mark.parametrize(
    "decision, message",
    [
        ("'enter_now'", "action 'enter_now' is not valid in state watch"),
        ("{action = 'setup', qty = -1}", "'qty' must be positive"),
        ("{action = 'setup', colour = 'red'}", "unknown decision field 'colour'"),
        ("true", "a decision must be nil, an action string or a table"),
    ],
)
def test_invalid_decision_names_the_return_line(harness: Any, decision: str, message: str) -> None:
    code = (
        f"""function watch(ctx)
  local x = ctx.close()
  if x > 100 then
    return nil
  end
  return {decision}
end
"""
        + FUNCTIONS
    )
    h = harness(code)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyError, match=rf"^strategy.lua:6: watch for TEST: .*{message}"):
        h.strategy.scan(State.WATCH, 0, 3)


@pytest.mark.parametrize(
    "code, message",
    [
        pytest.param(
            "function watch(ctx)\n  local t = nil\n  return t.x\nend\n",
            r"^strategy.lua:3: watch for TEST: attempt to index a nil value",
            id="runtime error",
        ),
        pytest.param(  # the line is the helper's, not the caller's
            "local function helper()\n  error('custom failure')\nend\nfunction watch(ctx) helper() end\n",
            r"^strategy.lua:2: watch for TEST: custom failure$",
            id="error in a helper",
        ),
    ],
)
def test_error_names_script_line_function_and_symbol(harness: Any, code: str, message: str) -> None:
    h = harness(code + FUNCTIONS)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyError, match=message):
        h.strategy.scan(State.WATCH, 0, 3)


@pytest.mark.parametrize(
    "code, message",
    [
        ("function watch(ctx) end\nfunction close_watch(ctx) end\n", "does not define function in_trade"),
        ("function watch(ctx) end end", r"^strategy.lua:1: <eof> expected"),
        ("error('at load')", r"^strategy.lua:1: at load"),
        ("while true do end", r"^strategy.lua:1: time budget exceeded \(100 ms per call\)$"),  # the default budget
        ("init = 3" + FUNCTIONS + "function watch() end", "init must be a function"),
    ],
)
def test_load_rejects_a_broken_script(harness: Any, code: str, message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        harness(code)


def test_missing_file(tmp_path: Any) -> None:
    from engine_core.config import StrategySection
    from engine_core.lua.host import LuaHost

    with pytest.raises(StrategyError, match="nope.lua: no such strategy file"):
        LuaHost(StrategySection(script="nope.lua"), tmp_path).load()


def test_init_and_on_fill_errors(harness: Any) -> None:
    from engine_core.model import Fill

    code = "function init(ctx) error('no init') end\nfunction on_fill(ctx, f) error('no fill') end\n"
    h = harness(code + "function watch() end" + FUNCTIONS)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyError, match=r"^strategy.lua:1: init for TEST: no init"):
        h.strategy.init()
    fill = Fill("c", "TEST", Side.BUY, Decimal(1), Decimal(1), Decimal(0), 1)
    with pytest.raises(StrategyError, match=r"^strategy.lua:2: on_fill for TEST: no fill"):
        h.strategy.on_fill(fill)


def test_decision_tables_are_read_raw_and_values_keep_their_types(harness: Any) -> None:
    code = """
    local QTY = {1, 1.0, 1, 2.5}
    function watch(ctx)
      ctx.state.n = (ctx.state.n or 0) + 1
      local n = ctx.state.n
      if n <= 4 then return {action = "setup", qty = QTY[n], expires = 2, reason = n % 2} end
      if n == 5 then return setmetatable({action = "setup"}, {__index = {qty = 5, side = "sell"}}) end
      if n == 6 then return {action = "enter", side = "sell", stop_price = 2, take_profit_price = 3.5, trailing_stop = 0.1} end
      return {action = "setup", qty = true}
    end
    function close_watch(ctx) end
    function in_trade(ctx) end
    """
    h = harness(code)
    h.feed(np.arange(1.0, 4.0))
    s = h.strategy
    decisions = [s.scan(State.WATCH, 0, 3)[1] for _ in range(6)]
    assert [(str(d.qty), d.reason, d.expires) for d in decisions[:4]] == [
        ("1", "1", 2),
        ("1.0", "0", 2),
        ("1", "1", 2),
        ("2.5", "0", 2),
    ]
    assert decisions[0] is decisions[2]  # the same values: the parsed decision is reused
    assert (decisions[4].qty, decisions[4].side) == (None, Side.BUY)  # raw fields, as Python walks the table
    d = decisions[5]
    assert (d.action, d.side, d.stop_price, d.take_profit_price, d.trailing_stop) == ("enter", Side.SELL, 2.0, 3.5, 0.1)
    with pytest.raises(
        StrategyError,
        match=r"^strategy.lua:\d+: watch for TEST: decision field 'qty' must be a finite number, got True",
    ):
        s.scan(State.WATCH, 0, 3)


@pytest.mark.parametrize(
    "decision, message",
    [
        ("{action = 'setup', [1] = 2}", "unknown decision field '1'"),
        ("{'setup'}", "unknown decision field '1'"),
        ("{action = 'setup', qty = 1, zzz = 1, colour = 'red'}", "unknown decision field 'colour'"),
        ("{action = 'setup', qty = {}}", "decision field 'qty' must be a finite number"),
        ("{action = 'setup', side = 'up'}", "decision field 'side' must be \"buy\" or \"sell\", got 'up'"),
        ("{qty = 1}", "action None is not valid in state watch"),
        ("{}", "action None is not valid in state watch"),
        ("{action = 'setup', qty = 0/0}", "decision field 'qty' must be a finite number, got nan"),
    ],
)
def test_invalid_decision_tables(harness: Any, decision: str, message: str) -> None:
    h = harness(f"function watch(ctx)\n  return {decision}\nend\n" + FUNCTIONS)
    h.feed(np.arange(1.0, 4.0))
    for _ in range(2):  # an invalid decision is never remembered
        with pytest.raises(StrategyError, match=rf"^strategy.lua:2: watch for TEST: .*{re.escape(message)}"):
            h.strategy.scan(State.WATCH, 0, 3)


def untouched(s: Any, fill: Any) -> None:
    """``on_fill`` of a script without the function: no call into Lua, nothing
    shipped to it (the position the view has now stays unshipped)."""
    calls, shipped = s.stamp.call, s.ctx.position
    s.view.position.qty += 1.0
    s.on_fill(fill)
    assert s.stamp.call == calls and s.ctx.position == shipped
    s.view.position.qty -= 1.0


def test_on_fill_without_the_function_does_nothing(harness: Any) -> None:
    from engine_core.model import Fill

    from .test_reload import rewrite

    h = harness("function watch() end" + FUNCTIONS)
    h.feed(np.arange(1.0, 4.0))
    fill = Fill("c", "TEST", Side.BUY, Decimal(1), Decimal(1), Decimal(0), 1)
    s = h.strategy
    untouched(s, fill)
    rewrite(
        h,
        "function on_fill(ctx, f) ctx.state.fills = (ctx.state.fills or 0) + 1 end\n"
        "function watch(ctx) return {action = 'setup', reason = tostring(ctx.state.fills)} end" + FUNCTIONS,
    )
    assert s.reload_if_changed() is not None
    s.on_fill(fill)
    assert s.scan(State.WATCH, 0, 1)[1].reason == "1"
    rewrite(h, "function watch() end" + FUNCTIONS)
    assert s.reload_if_changed() is not None
    untouched(s, fill)


SETUPS = """
function watch(ctx)
  ctx.state.watched = (ctx.state.watched or 0) + 1
  if ctx.index % 3 == 0 then return "setup" end
end
function close_watch(ctx)
  ctx.state.asked = (ctx.state.asked or 0) + 1
  if ctx.index % 2 == 0 then return {action = "enter", qty = 2, reason = "even"} end
  if ctx.index % 9 == 0 then return "cancel" end
end
function in_trade(ctx) end
"""


def as_the_worker_asks(h: Any, n: int) -> tuple[list[tuple[int, str, Any]], int]:
    """Scan watch over ``n`` bars as the worker does (after a setup, close_watch
    at its bar; after what close_watch decided, watch again from the next bar):
    the decisions, and the calls into Lua that took."""
    s = h.strategy
    calls = [0]
    scan = s._scan

    def counted(*args: Any) -> Any:
        calls[0] += 1
        return scan(*args)

    s._scan = counted
    out, i = [], 0
    while i < n:
        k, d = s.scan(State.WATCH, i, n)
        if d is None:
            break
        out.append((k, d.action, None))
        k2, d2 = s.scan(State.CLOSE_WATCH, k, k + 1)
        out.append((k2, None if d2 is None else d2.action, None if d2 is None else d2.qty))
        i = k + 1
    return out, calls[0]


def test_a_setup_asks_close_watch_on_its_bar_in_the_same_call(harness: Any) -> None:
    """One crossing into Lua for a setup's bar, not two: close_watch is asked
    in the setup's call, and the worker's scan of close_watch at that bar
    gets its answer, as a call of its own would have given it."""
    chained = harness(SETUPS)
    alone = harness(SETUPS)
    alone.strategy.warming = True  # (warming: nothing asked ahead, each function a call of its own)
    for h in (chained, alone):
        h.feed(np.arange(1.0, 31.0))
    got, calls = as_the_worker_asks(chained, 30)
    expected, alone_calls = as_the_worker_asks(alone, 30)
    assert got == expected and len(got) == 20  # ten setups, each with close_watch's answer
    assert {action for _, action, _ in got} == {"setup", "enter", "cancel", None}
    assert calls == alone_calls - 10
    assert chained.strategy.state() == alone.strategy.state() == {"watched": 30, "asked": 10}


def close_watch_errors(harness: Any, code: str, setup: int) -> tuple[str, str]:
    """The error the scan of close_watch at the setup's bar ``setup`` raises:
    asked in the setup's call, and as a call of its own (``warming``)."""
    errors = []
    for warming in (False, True):
        h = harness(code)
        h.strategy.warming = warming
        h.feed(np.arange(1.0, 6.0))
        k, d = h.strategy.scan(State.WATCH, 0, 5)
        assert (k, d.action) == (setup, "setup")
        with pytest.raises(StrategyError) as err:
            h.strategy.scan(State.CLOSE_WATCH, setup, setup + 1)
        errors.append(str(err.value))
    return errors[0], errors[1]


def test_close_watch_failing_on_a_setups_bar_fails_at_its_own_scan(harness: Any) -> None:
    """The setup is decided; the scan of close_watch at its bar raises the
    failure, naming close_watch and its line, as a call of its own would."""
    code = """
function watch(ctx) if ctx.index == 3 then return "setup" end end
function close_watch(ctx)
  error("no quote")
end
function in_trade(ctx) end
"""
    chained, alone = close_watch_errors(harness, code, 2)
    assert chained == alone
    assert "close_watch" in chained and ":4:" in chained and "no quote" in chained


def test_an_invalid_answer_of_close_watch_on_a_setups_bar_names_its_return_line(harness: Any) -> None:
    code = """
function watch(ctx) if ctx.index == 2 then return "setup" end end
function close_watch(ctx)
  local x = 1
  return {action = "enter", qty = -1}
end
function in_trade(ctx) end
"""
    chained, alone = close_watch_errors(harness, code, 1)
    assert chained == alone and "close_watch" in chained and ":5" in chained


def test_close_watch_on_a_setups_bar_has_a_budget_of_its_own(harness: Any) -> None:
    """Asked in the setup's call, close_watch still gets the budget a call of
    its own gets (each uses 60% of one here), and a runaway one is stopped."""
    code = """
function watch(ctx)
  for i = 1, 6000 do end
  if ctx.index == 2 then return "setup" end
end
function close_watch(ctx)
  for i = 1, 6000 do end
  if ctx.index == 2 then return "cancel" end
  while true do end
end
function in_trade(ctx) end
"""
    h = harness(code, budget="instructions", max_instructions=10_000)
    h.feed(np.arange(1.0, 9.0))
    assert h.strategy.scan(State.WATCH, 0, 8)[0] == 1
    assert h.strategy.scan(State.CLOSE_WATCH, 1, 2)[1].action == "cancel"
    assert h.strategy.scan(State.WATCH, 2, 8) == (8, None)
    code_runaway = code.replace('if ctx.index == 2 then return "setup" end', 'return "setup"')
    r = harness(code_runaway, budget="instructions", max_instructions=10_000)
    r.feed(np.arange(1.0, 9.0))
    assert r.strategy.scan(State.WATCH, 0, 8)[0] == 0  # index 1: close_watch loops
    with pytest.raises(StrategyError, match="instruction budget exceeded.*close_watch|close_watch.*instruction budget"):
        r.strategy.scan(State.CLOSE_WATCH, 0, 1)
