"""The sandbox: a hostile corpus, each case failing with the right error and
leaving the runtime usable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from engine_core.errors import StrategyBudgetError, StrategyError
from engine_core.model import State
from tests.lua.conftest import ROOMY, Budget

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
    "coroutine.resume(42)",
    "coroutine.wrap(42)()",
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
    "loop in an xpcall handler": "xpcall(error, function() while true do end end)",
    "coroutine": "local co = coroutine.create(function() while true do end end); coroutine.resume(co)",
    "coroutine wrap in pcall": "while true do pcall(coroutine.wrap(function() while true do end end)) end",
    "nested coroutines": (
        "coroutine.wrap(function() coroutine.resume(coroutine.create(function() while true do end end)) end)()"
    ),
    "coroutine yielding forever": (
        "local co = coroutine.wrap(function() while true do coroutine.yield() end end); while true do co() end"
    ),
    "__index metamethod": "local t = setmetatable({}, {__index = function() while true do end end}); local x = t.x",
    "__lt metamethod in sort": (
        "local mt = {__lt = function() while true do end end}\n"
        "  table.sort({setmetatable({}, mt), setmetatable({}, mt), setmetatable({}, mt)})"
    ),
    "__close metamethod": (
        "local guard <close> = setmetatable({}, {__close = function() while true do end end}); error('x')"
    ),
    "loop after resuming a non-coroutine": "pcall(coroutine.resume, 42); while true do end",
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
MEMORY_LIMIT = r"^strategy.lua(:\d+)?: watch for TEST: memory limit of 16 MB exceeded"


def watch(code: str) -> str:
    return f"function watch(ctx)\n  {code}\nend\nfunction close_watch() end\nfunction in_trade() end\n"


@pytest.mark.parametrize("code", RUNAWAYS.values(), ids=RUNAWAYS.keys())
def test_runaway_hits_its_budget(harness: Any, budget: Budget, code: str) -> None:
    h = harness(watch(code), **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyBudgetError, match=rf"^strategy.lua:\d+: watch for TEST: {budget.message}$"):
        h.strategy.scan(State.WATCH, 0, 3)


@pytest.mark.parametrize("mode", sorted(ROOMY))
@pytest.mark.parametrize("code", MEMORY.values(), ids=MEMORY.keys())
def test_bomb_hits_the_memory_limit(harness: Any, mode: str, code: str) -> None:
    h = harness(watch(code), max_memory_mb=16, **ROOMY[mode])
    h.feed(np.arange(1.0, 4.0))
    with pytest.raises(StrategyBudgetError, match=MEMORY_LIMIT):
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


def test_runtime_stays_usable_after_each_failure(harness: Any, budget: Budget) -> None:
    code = """
    function watch(ctx)
      if ctx.state.mode == "loop" then while true do end end
      if ctx.state.mode == "memory" then return string.rep("x", 2^30) end
      if ctx.state.mode == "error" then error("boom") end
      return {action = "setup", reason = tostring(ctx.close())}
    end
    function close_watch() end
    function in_trade() end
    """
    h = harness(code, max_memory_mb=16, **budget.limits)
    h.feed(np.arange(1.0, 4.0))
    for mode, message in (
        ("loop", budget.message),
        ("loop", budget.message),
        ("memory", "memory limit"),
        ("error", "boom"),
    ):
        h.strategy.restore_state({"mode": mode})
        with pytest.raises(StrategyError, match=message):
            h.strategy.scan(State.WATCH, 0, 3)
    # The same runtime runs a well-behaved call again.
    h.strategy.restore_state({"mode": "ok"})
    assert h.strategy.scan(State.WATCH, 1, 3)[1].reason == "2.0"


def test_instruction_budget_is_per_call_not_per_scan(harness: Any) -> None:
    code = """
    function watch(ctx) for i = 1, 20000 do end end
    function close_watch() end
    function in_trade() end
    """
    h = harness(code, budget="instructions", max_instructions=100_000)
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
