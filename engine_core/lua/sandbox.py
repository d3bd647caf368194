"""A sandboxed Lua 5.4 runtime: whitelisted environment, CPU and memory budgets.

One :class:`Sandbox` per symbol (lupa runtimes are not shared across
threads). Scripts are loaded as text only into a fresh whitelisted
environment; Python objects are never reachable from a script.

The sandbox itself is Lua, in ``sandbox.lua`` next to this module (the host
side of each symbol's ``ctx`` is ``context.lua``): run once per runtime with
the full standard library, it returns the host's toolkit, and nothing in it
is reachable from a script's environment.

The CPU budget is per call (one bar of a decision function, ``init``,
``on_fill``, loading a script), enforced by hooks installed by
``sandbox.lua`` (the ``debug`` library stays outside the script's
environment), in one of two ways (``[strategy] budget``):

- ``"time"`` (the default): calls run with no hook at all, and the process's
  watchdog (``watchdog.py``) stops a call that computes past ``max_call_ms``
  (its thread's CPU time: waiting does not count). The
  host stamps each call into Lua (:meth:`Sandbox.call`, and inline in the
  scan).
- ``"instructions"``: a count hook fires every ``PERIOD`` instructions and
  raises once the current call has used ``max_instructions``: the same limit
  on every machine, at a price: while a count hook is set, every VM
  instruction traps into ``luaG_traceexec`` (about 4 ns here), whatever
  ``PERIOD`` is (a strategy's bar costs ~1.5x); ``PERIOD`` only sets how
  often the Lua hook function itself runs.

Callers reset the budget per call with one upvalue assignment (the scan loop
shares the budget's upvalues through ``share_budget`` and resets it inline per
bar). ``pcall``, ``xpcall`` and ``coroutine.resume``/``wrap`` re-raise a spent
budget or a memory error, and every coroutine gets the hook, so neither a
swallowing loop nor a coroutine escapes the limit.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from importlib import resources
from typing import Any, Literal, cast

from lupa import lua54

from engine_core.errors import StrategyBudgetError, StrategyError
from engine_core.lua.watchdog import WATCHDOG, Slot, Stamp

PERIOD = 1000  # instructions between two runs of the budget hook
_MB = 1 << 20


_LOCATION = re.compile(r"^([^\n]*?):(\d+): ")


def _refuse(obj: Any, name: Any, setting: bool) -> Any:
    raise AttributeError("Python attributes are not accessible from Lua")


class Sandbox:
    """A Lua 5.4 runtime with the script sandbox installed."""

    def __init__(
        self,
        max_memory_mb: int,
        budget: Literal["time", "instructions"] = "time",
        max_call_ms: int = 100,
        max_instructions: int = 1_000_000,
    ) -> None:
        self.memory_budget = max_memory_mb * _MB
        self.lua = lua54.LuaRuntime(
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            attribute_filter=_refuse,
            max_memory=self.memory_budget,
        )
        # What the time budget's hook reads, on the thread running the call: its
        # CPU time, so that a call waiting (for a core on a loaded machine, for
        # the interpreter lock in a callback) is never taken for a runaway.
        self.clock = time.thread_time
        self.stamp = Stamp()
        if budget == "time":
            self.tools = self.run(
                "sandbox.lua", max_instructions, PERIOD, max_call_ms, self._now, self._enter, self._forget
            )
            self.stamp = Slot(self.lua, self.tools.main, max_call_ms)
            WATCHDOG.watch(self.stamp)
        else:
            self.tools = self.run("sandbox.lua", max_instructions, PERIOD)
        self.lua.globals().python = None

    def _now(self) -> float:
        return self.clock()

    # Only the time budget's sandbox.lua calls these two.
    def _enter(self, thread: str) -> None:
        cast(Slot, self.stamp).enter(thread)

    def _forget(self) -> None:
        cast(Slot, self.stamp).forget()

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, a call into Lua that runs script code, under the
        time budget (the scan stamps its calls inline, the same way)."""
        stamp = self.stamp
        stamp.call += 1
        stamp.begun.append(stamp)
        try:
            return function(*args)
        finally:
            stamp.call += 1

    def run(self, glue: str, *args: Any) -> Any:
        """Run one of the host's Lua files (``glue``, shipped in this package)
        with ``args`` as its ``...``; its results. Text only, never bytecode."""
        return self.lua.execute(_glue(glue), *args, name=f"@engine_core/lua/{glue}", mode="t")

    def reserve(self, data_bytes: int) -> None:
        """Allow ``data_bytes`` for the host's own data on top of the script's budget."""
        self.lua.set_max_memory(self.memory_budget + data_bytes)

    def compile(self, code: str, chunkname: str, required: tuple[str, ...], optional: tuple[str, ...]) -> Any:
        """Load a script in a fresh environment; raise StrategyError when it
        does not compile, fails at load, or lacks a required function."""
        env, kind, message, line = results(
            self.call(self.tools.compile, code, chunkname, self.lua.table(*required), self.lua.table(*optional))
        )
        if env is None:
            raise self.failure(chunkname[1:], None, kind, message, line, None)
        return env

    def failure(
        self,
        script: str,
        function: str | None,
        kind: str,
        message: str,
        line: int | None,
        symbol: str | None,
    ) -> StrategyError:
        """The error for a failed call, naming script, line, function and symbol
        (``function`` None: loading the script)."""
        found = _LOCATION.match(message)
        if found:  # Lua's "chunk:line: " prefix; its line only counts in the script
            if found.group(1) == script:
                line = line or int(found.group(2))
            message = message[found.end() :]
        parts = [f"{script}:{line}" if line else script]
        if function:
            parts.append(f"{function} for {symbol}" if symbol else function)
        if kind == "memory":
            message = f"memory limit of {self.memory_budget // _MB} MB exceeded"
        parts.append(message)
        cls = StrategyBudgetError if kind in ("budget", "memory") else StrategyError
        return cls(": ".join(parts))


@functools.cache
def _glue(name: str) -> str:
    """The text of a Lua file of this package (read once per process)."""
    return resources.files("engine_core.lua").joinpath(name).read_text(encoding="utf-8")


def results(result: Any) -> tuple[Any, Any, Any, Any]:
    """A Lua call's variable results as a 4-tuple (missing ones None)."""
    values = result if isinstance(result, tuple) else (result,)
    return (*values, None, None, None, None)[:4]  # type: ignore[return-value]
