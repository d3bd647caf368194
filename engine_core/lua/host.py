"""The Lua strategy host: ``LuaHost`` loads and checks the script once,
``bind`` gives each symbol its own sandboxed runtime running it."""

from __future__ import annotations

import logging
from typing import Any

from lupa import lua54

from engine_core.errors import StrategyError
from engine_core.lua.context import Context, from_lua, to_lua
from engine_core.lua.sandbox import Sandbox, results
from engine_core.lua.script import FileLook, ScriptVersion, ScriptWatcher, read_script
from engine_core.model import Fill, State
from engine_core.strategy import (
    DECISION_FIELDS,
    FUNCTION_OF_STATE,
    OPTIONAL_FUNCTIONS,
    REQUIRED_FUNCTIONS,
    Decision,
    StrategyHost,
    SymbolStrategy,
    SymbolView,
    parse_decision,
)

log = logging.getLogger("engine_core.lua")

_WATCH, _CLOSE_WATCH = State.WATCH, State.CLOSE_WATCH
_SETUP = ("setup",)  # what watch returned when close_watch was asked on its bar too

_DECISIONS_KEPT = 1024  # parsed decisions remembered per symbol (the cache empties when full)


class LuaHost(StrategyHost):
    """Strategies written in Lua (``[strategy] host = "lua"``, ``script = "file.lua"``)."""

    def load(self) -> None:
        if not self.config.script:
            raise StrategyError('strategy.script: the lua host needs script = "file.lua"')
        self.label = self.config.script
        self.path = (self.base_dir / self.config.script).resolve()
        self.version = read_script(self.path, self.label)
        self.look = FileLook(self.path)  # one look at the file for every symbol's watcher
        self.sandbox().compile(self.version.code, self.chunkname, REQUIRED_FUNCTIONS, OPTIONAL_FUNCTIONS)

    @property
    def chunkname(self) -> str:
        return "@" + self.label

    def sandbox(self) -> Sandbox:
        c = self.config
        return Sandbox(c.max_memory_mb, c.budget, c.max_call_ms, c.max_instructions)

    def limits(self) -> str:
        c = self.config
        if c.budget == "time":
            return f"time budget {c.max_call_ms} ms per call, memory {c.max_memory_mb} MB per symbol"
        return f"instruction budget {c.max_instructions} per call, memory {c.max_memory_mb} MB per symbol"

    def bind(self, symbol: str, view: SymbolView) -> SymbolStrategy:
        return LuaSymbolStrategy(self, symbol, view)


class LuaSymbolStrategy(SymbolStrategy):
    """One symbol's script: its own runtime, ctx and ``state`` table."""

    # slots: a live bar finds the strategy cold in the caches (ARCHITECTURE.md, hot paths)
    __slots__ = tuple(
        "host symbol sandbox stamp ctx _scan _on_fill _get_state _decisions _state _state_at _after view"
        " watcher has_on_fill warming".split()
    )

    def __init__(self, host: LuaHost, symbol: str, view: SymbolView) -> None:
        self.warming = False  # (a slot: the class default does not show through it)
        self.host = host
        self.symbol = symbol
        self.sandbox = host.sandbox()
        self.stamp = self.sandbox.stamp
        self.ctx = Context(self.sandbox, view, host.label)
        lua = self.ctx.lua
        # looked up once: each read of a Lua table's field from Python costs microseconds
        self._scan, self._on_fill, self._get_state = lua.scan, lua.on_fill, lua.get_state
        # Decisions parse_decision accepted, by state and the values returned
        # (with their types: 1, 1.0 and true are equal keys otherwise).
        self._decisions: dict[tuple[Any, ...], Decision] = {}
        # ctx.state as Python values, and the stamp of calls into Lua it was read at: only a
        # call changes it, and an order's step journals the symbol's snapshot several times
        self._state: Any = None
        self._state_at = -1
        # close_watch's answer on a setup's bar, asked in the setup's call: (the bar's
        # index, the values it returned, its failure), for the scan that asks for it next
        self._after: tuple[int, tuple[Any, ...], tuple[Any, ...] | None] | None = None
        self.view = view
        self._install(host.version)
        self.watcher = ScriptWatcher(host.path, host.label, host.version, look=host.look)

    def _install(self, version: ScriptVersion) -> None:
        env = self.sandbox.compile(version.code, self.host.chunkname, REQUIRED_FUNCTIONS, OPTIONAL_FUNCTIONS)
        self.ctx.lua.set_functions(env, self.sandbox.lua.table(*REQUIRED_FUNCTIONS, *OPTIONAL_FUNCTIONS))
        self._state_at = -1
        self.has_on_fill = env["on_fill"] is not None

    def _failure(self, function: str, result: tuple[Any, ...]) -> StrategyError:
        _, kind, message, line = result
        return self.sandbox.failure(self.host.label, function, kind, message, line, self.symbol)

    def _where(self, function: str, line: int | None) -> str:
        at = f"{self.host.label}:{line}" if line else self.host.label
        return f"{at}: {function} for {self.symbol}"

    def state(self) -> Any:
        at = self.stamp.call
        if at != self._state_at:
            self._state, self._state_at = from_lua(self._get_state()), at
        return self._state

    def restore_state(self, data: Any) -> None:
        self.ctx.lua.set_state(to_lua(self.sandbox.lua, data if isinstance(data, dict | list) else {}))
        self._state_at = -1

    def init(self) -> None:
        self.ctx.sync()
        result = results(self.sandbox.call(self.ctx.lua.call, "init", self.ctx.off))
        if result[0] is None:
            raise self._failure("init", result)

    def scan(self, state: State, start: int, stop: int) -> tuple[int, Decision | None]:
        function = FUNCTION_OF_STATE[state]
        after, self._after = self._after, None
        if after is not None and state is _CLOSE_WATCH and stop == start + 1 and after[0] == self.view.seen + start:
            return self._answer(start, after[1], after[2])
        # Lua returns stop alone; or k and the decision (a table with only
        # decision fields flattened to their values in DECISION_FIELDS order);
        # or nil and the failure. With ``chain``, a bar whose watch returned
        # "setup" asks close_watch too: -1 - k and close_watch's answer (none
        # when it returned nothing), or, when close_watch failed, the failure and k.
        shipped = self.ctx.sync_data()
        chain = state is _WATCH and not self.warming
        stamp = self.stamp  # the time budget's count of calls (Sandbox.call, inline)
        stamp.call += 1
        stamp.begun.append(stamp)
        try:
            result = self._scan(function, start, stop, chain, *shipped)
        finally:
            stamp.call += 1
        if result.__class__ is not tuple:
            if result >= 0:
                return stop, None
            result = (result,)  # a setup, and close_watch returned nothing
        k = result[0]
        if k is None:
            if len(result) == 4:
                raise self._failure(function, result)
            k = result[4]  # the setup, then (its next scan) close_watch's failure
            self._after = (self.view.seen + k, (), result[:4])
            return k, self._decision(state, function, k, _SETUP)
        if k < 0:
            k = -1 - k
            self._after = (self.view.seen + k, result[1:], None)  # for the scan of close_watch at k, next
            return k, self._decision(state, function, k, _SETUP)
        return k, self._decision(state, function, k, result[1:])

    def _answer(self, k: int, values: tuple[Any, ...], failure: tuple[Any, ...] | None) -> tuple[int, Decision | None]:
        """close_watch's answer at chunk bar ``k``, asked in the call of the
        setup there: as a scan of close_watch at ``k`` alone returns it."""
        if failure is not None:
            raise self._failure("close_watch", failure)
        if not values:
            return k + 1, None
        return k, self._decision(_CLOSE_WATCH, "close_watch", k, values)

    def _decision(self, state: State, function: str, k: int, values: tuple[Any, ...]) -> Decision | None:
        """A decision from the values Lua returned for it (one, or a table's
        fields flattened), parsed once per distinct return."""
        value = values[0] if len(values) == 1 else values
        if value.__class__ is str:
            key: tuple[Any, ...] | None = (state, value)
        elif value.__class__ is tuple:
            key = (state, value, tuple(map(type, value)))
        else:
            key = None
        decision = self._decisions.get(key) if key is not None else None
        if decision is not None:
            return decision
        fields = _python(value)
        try:
            decision = parse_decision(state, fields, self._where(function, None))
        except StrategyError:
            line = self.sandbox.call(self.ctx.lua.return_line, function, k)
            # The same error again, now naming the line of the return.
            return parse_decision(state, fields, self._where(function, line))
        if key is not None and decision is not None:
            if len(self._decisions) >= _DECISIONS_KEPT:
                self._decisions.clear()
            self._decisions[key] = decision
        return decision

    def on_fill(self, fill: Fill) -> None:
        if not self.has_on_fill:
            return
        ctx = self.ctx
        ctx.sync()
        at = ctx.bar_at(fill.ts)
        result = results(
            self.sandbox.call(
                self._on_fill,
                at,
                fill.side.value,
                float(fill.qty),
                float(fill.price),
                float(fill.commission),
                fill.ts,
                fill.client_id,
            )
        )
        if result[0] is None:
            raise self._failure("on_fill", result)

    def reload_if_changed(self, force: bool = False) -> str | None:
        label = self.host.label
        try:
            version = self.watcher.poll(force)
            if version is None:
                return None
            self._install(version)
        except StrategyError as err:
            message = f"{label}: reload rejected for {self.symbol}, the running version stays: {err}"
            log.warning(message)
            raise StrategyError(message) from err
        message = f"{label}: reloaded for {self.symbol} (sha256 {version.digest[:12]})"
        log.info(message)
        return message


def _python(value: Any) -> Any:
    """A decision as parse_decision reads it: a str, a dict for a Lua table or
    for the flattened fields of one (nil fields left out, as Lua has them)."""
    if value.__class__ is tuple:
        return {name: v for name, v in zip(DECISION_FIELDS, value) if v is not None}
    if lua54.lua_type(value) == "table":
        return dict(value.items())
    return value
