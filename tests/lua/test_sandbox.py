"""The sandbox: a hostile corpus, each case failing with the right error and
leaving the runtime usable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine_core.errors import StrategyBudgetError, StrategyError
from engine_core.model import State

ESCAPES = [
    "os.execute('echo hi')",
    "io.open('/etc/passwd')",
    "require('os')",
    "load('return 1')",
    "loadstring('return 1')",
    "dofile('/etc/passwd')",
    "string.dump(watch)",
    "(''):dump()",
    "('').dump(watch)",
    "debug.getregistry()",
    "package.loaded.os.execute('echo hi')",
    "collectgarbage('count')",
    "python.eval('1')",
    "getmetatable('').__index.dump(watch)",
    "getmetatable(ctx).__index.close",
    "setmetatable(ctx, {})",
    "rawset(ctx.params, 'x', 1)",
    "rawset(ctx.position, 'qty', 1)",
    "setmetatable({}, {__gc = function() end})",
    "os.getenv('HOME')",
    "print('x')",
]


def body(code: str) -> str:
    return f"function watch(ctx)\n  local x = {code}\n  return nil\nend\nfunction close_watch() end\nfunction in_trade() end\n"


@pytest.mark.parametrize("code", ESCAPES)
def test_escape_is_an_error(harness: Any, code: str) -> None:
    h = harness(body(code))
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyError, match=r"^strategy.lua:2: watch for TEST: ") as info:
        h.strategy.scan(State.WATCH, 0, 3)
    assert not isinstance(info.value, StrategyBudgetError)


def test_bytecode_is_refused_even_with_a_saved_load(harness: Any, tmp_path: Any) -> None:
    (tmp_path / "bin.lua").write_bytes(b"\x1bLua\x54\x00")
    from engine_core.config import StrategySection
    from engine_core.lua.host import LuaHost

    host = LuaHost(StrategySection(script="bin.lua"), tmp_path)
    with pytest.raises(StrategyError, match="binary chunk"):
        host.load()


RUNAWAYS = {
    "loop": "while true do end",
    "loop in pcall": "while true do pcall(function() while true do end end) end",
    "loop in xpcall": "while true do xpcall(function() while true do end end, function(e) return e end) end",
    "coroutine": "local co = coroutine.create(function() while true do end end); coroutine.resume(co)",
    "coroutine wrap in pcall": "while true do pcall(coroutine.wrap(function() while true do end end)) end",
    "recursion in pcall": "local function f() pcall(f) end; while true do f() end",
    "tail recursion": "local function f(n) return f(n + 1) end; f(1)",
    "string.rep in pcall": "while true do pcall(string.rep, 'x', 1000) end",
}
MEMORY = {
    "string.rep bomb": "string.rep('x', 2^30)",
    "string.rep bomb in pcall": "pcall(string.rep, 'x', 2^30)",
    "growing table": "local t = {}; for i = 1, 1e9 do t[i] = {i} end",
    "concat doubling in pcall": "local s = 'x'; while true do local ok, r = pcall(function() return s .. s end); s = r end",
}
# Each runaway hits the instruction budget, each bomb the memory limit.
BUDGET = r"^strategy.lua:\d+: watch for TEST: instruction budget exceeded"
MEMORY_LIMIT = r"^strategy.lua(:\d+)?: watch for TEST: memory limit of 16 MB exceeded"
LIMITS = [pytest.param(code, {"max_instructions": 100_000}, BUDGET, id=name) for name, code in RUNAWAYS.items()] + [
    pytest.param(code, {"max_memory_mb": 16, "max_instructions": 100_000_000}, MEMORY_LIMIT, id=name)
    for name, code in MEMORY.items()
]


@pytest.mark.parametrize("code, limits, message", LIMITS)
def test_runaway_or_bomb_hits_its_limit(harness: Any, code: str, limits: dict[str, int], message: str) -> None:
    h = harness(f"function watch(ctx)\n  {code}\nend\nfunction close_watch() end\nfunction in_trade() end\n", **limits)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyBudgetError, match=message):
        h.strategy.scan(State.WATCH, 0, 3)


def test_deep_recursion_is_an_error(harness: Any) -> None:
    code = (
        "local function f(n) return 1 + f(n + 1) end\n"
        "function watch(ctx) return f(1) end\nfunction close_watch() end\nfunction in_trade() end\n"
    )
    h = harness(code, max_instructions=100_000_000)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyError, match=r"^strategy.lua:1: watch for TEST: .*stack overflow"):
        h.strategy.scan(State.WATCH, 0, 3)


def test_runtime_stays_usable_after_each_failure(harness: Any) -> None:
    code = """
    function watch(ctx)
      if ctx.state.mode == "loop" then while true do end end
      if ctx.state.mode == "memory" then return string.rep("x", 2^30) end
      if ctx.state.mode == "error" then error("boom") end
      return {action = "setup", reason = tostring(ctx.close())}
    end
    function close_watch() end
    function in_trade() end
    function init(ctx) ctx.state.mode = ctx.params.mode end
    """
    h = harness(code, params={"mode": "loop"}, max_memory_mb=16, max_instructions=100_000)
    h.feed(np.arange(1.0, 4.0))
    h.strategy.init()
    for expected in (StrategyBudgetError, StrategyBudgetError, StrategyError):
        with pytest.raises(expected):
            h.strategy.scan(State.WATCH, 0, 3)
    # The same runtime still runs a well-behaved call, and another symbol is unaffected.
    other = harness(code, params={"mode": "ok"})
    other.feed(np.arange(1.0, 4.0))
    other.strategy.init()
    assert other.strategy.scan(State.WATCH, 1, 3)[1].reason == "2.0"


def test_budget_is_per_call_not_per_scan(harness: Any) -> None:
    code = """
    function watch(ctx) for i = 1, 20000 do end end
    function close_watch() end
    function in_trade() end
    """
    h = harness(code, max_instructions=100_000)
    h.feed(np.arange(1.0, 101.0))  # 100 bars x ~40,000 instructions: far past one budget
    assert h.strategy.scan(State.WATCH, 0, 100) == (100, None)


def test_python_objects_are_not_reachable(harness: Any) -> None:
    code = """
    function watch(ctx)
      local seen = {}
      local function walk(t, depth)
        if depth > 4 or seen[t] then return end
        seen[t] = true
        for k, v in pairs(t) do
          local kind = type(v)
          if kind == "userdata" then error("userdata at " .. tostring(k)) end
          if kind == "table" then walk(v, depth + 1) end
        end
      end
      walk(_G, 0)
      walk(ctx, 0)
      return "setup"
    end
    function close_watch() end
    function in_trade() end
    """
    h = harness(code)
    h.feed(np.arange(1.0, 4.0))
    assert h.strategy.scan(State.WATCH, 0, 3)[1].action == "setup"
