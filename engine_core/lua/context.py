"""The ``ctx`` a Lua strategy reads, and the scan loop that calls it.

Everything per bar happens in Lua (``context.lua``, next to this module, run
once per symbol in its sandbox): the scan loop sets the current bar and
calls the state's function, and the ctx accessors are closures reading Lua
arrays at that bar. Python ships each chunk's arrays once, as packed
float64/int64 bytes unpacked by ``string.unpack``, and only the arrays the
script has asked for: the first read of ``ctx.close`` or ``ctx.ind.sma(10)``
registers the need, and from then on every chunk ships that array. When a
chunk follows the previous one, only its new bars are shipped; the history
part is moved inside Lua.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
from lupa import lua54

from engine_core.errors import EngineError
from engine_core.lua.sandbox import Sandbox
from engine_core.strategy import DECISION_FIELDS, SymbolView
from engine_core.tracked import TrackedIndicator

_ARRAY_BYTES = 40  # a Lua array slot, with room for growth, per shipped value

_COLUMN = {"time": "ts", "open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
ArrayOf = Callable[[SymbolView], np.ndarray]
NewestOf = Callable[[SymbolView], Any]


class Context:
    """One symbol's ``ctx`` inside its sandbox, fed from its view."""

    __slots__ = tuple(
        "sandbox view label lua arrays newest capacity fits reserved length seen n off position _set_position"
        " _load_bar _load_chunk".split()
    )

    def __init__(self, sandbox: Sandbox, view: SymbolView, label: str) -> None:
        self.sandbox = sandbox
        self.view = view
        self.label = label
        self.arrays: list[ArrayOf] = []  # in the order the Lua side holds them
        self.newest: list[NewestOf] = []  # each array's value at the view's newest bar, as a number
        self.seen, self.n = -1, 0  # the view's seen and n when its chunk was shipped (-1: none yet)
        self.length = 0  # length of the arrays in Lua
        self.off = 0  # array index (1-based) of the chunk's first bar, minus one
        self.capacity = max(4 * view.window, 1024)  # array length up to which chunks are appended
        self.reserved = 0  # memory reserved for the arrays so far
        self.fits = 0  # how many bars of the arrays that is
        self.position: tuple[Any, ...] | None = None
        self.lua = sandbox.run(
            "context.lua",
            sandbox.tools,
            self._need_column,
            self._need_indicator,
            self._log,
            view.symbol,
            to_lua(sandbox.lua, view.params),
            view.window,
            sandbox.lua.table(*DECISION_FIELDS),
        )
        # Looked up once: reading a field of a Lua table from Python costs
        # several microseconds (a new wrapper object each time).
        self._set_position, self._load_bar, self._load_chunk = (
            self.lua.set_position,
            self.lua.load_bar,
            self.lua.load_chunk,
        )

    # ------------------------------------------------------------ called from Lua

    def _need_column(self, name: str) -> bytes:
        column = _COLUMN[name]
        # the newest value from the newest bar, not the array: a live bar's arrays are made only when read
        number = int if column == "ts" else float
        return self._add(lambda view: getattr(view, column), lambda view: number(getattr(view.last_bar(), column)))

    def _need_indicator(self, name: Any, *args: Any) -> tuple[Any, ...]:
        try:
            tracked = self.view.tracker(str(name), args)
        except EngineError as err:
            return None, str(err)
        return tuple(self._add(*_output(tracked, k)) for k in range(len(tracked.latest)))

    def _add(self, array_of: ArrayOf, newest_of: NewestOf) -> bytes:
        self.arrays.append(array_of)
        self.newest.append(newest_of)
        self._reserve()
        return array_of(self.view).tobytes()

    def _log(self, message: str, at: int) -> None:
        """``ctx.log`` at Lua array index ``at``: the line goes out with that bar's time."""
        view = self.view
        i = int(at) - 1 - self.off + view.offset
        view.log(int(view.ts[i]) if 0 <= i < len(view.ts) else None, str(message))

    # ------------------------------------------------------------ called by the host

    def sync(self) -> None:
        """Ship a new chunk's arrays and a changed position to Lua."""
        args = self.sync_data()
        if args[0]:
            self._set_position(*args[1:8])
        if len(args) > args[0] + 1:
            self._load_bar(*args[args[0] + 1 :])

    def sync_data(self) -> tuple[Any, ...]:
        """Ship a new chunk's arrays; return what Lua's ``scan`` takes before
        its call: how many position values follow (0 or 7), the position when
        it changed since it was last shipped, then a live bar's ``load_bar``
        arguments when one is to be appended. A live bar and a changed
        position thus ride on the call into Lua that scans: one crossing a
        bar instead of two (each releases and takes back the interpreter lock)."""
        view = self.view
        seen, n, length = view.seen, view.n, self.length
        if seen == self.seen and n == self.n:  # shipped (a second scan of the same bar)
            bar: tuple[Any, ...] = ()
        elif n == 1 and seen == self.seen + self.n and view.offset <= length < self.capacity and length < self.fits:
            # a live bar that follows the last one (``_ship``'s common case, inline): appended
            offset = view.offset
            self.seen, self.n, self.off, self.length = seen, 1, length, length + 1
            bar = (length, seen - length, length - offset + 1, length + 1, *[value(view) for value in self.newest])
        else:
            bar = self._ship()
        p = view.position
        position = (p.qty, p.avg_price, p.entry_ts, p.entry_index, p.stop_price, p.take_profit_price, p.trailing_stop)
        if position == self.position:
            return (0, *bar)
        self.position = position
        return (7, *position, *bar)

    def _ship(self) -> tuple[Any, ...]:
        """Send the chunk's bars. A chunk that follows the last one is appended
        after it while the arrays stay under ``capacity`` (a live bar then costs
        O(1)); past that, the history is moved to the front first. A live bar
        appended is not sent here: its ``load_bar`` arguments are returned, for
        the caller's next call into Lua (else ``()``)."""
        view = self.view
        n, offset, length = view.n, view.offset, self.length
        follows = self.seen >= 0 and view.seen == self.seen + self.n and offset <= length
        if follows and length + n <= self.capacity:
            keep, off, start = 0, length, offset
        elif follows:
            keep, off, start = offset, offset, offset
        else:
            keep, off, start = 0, offset, 0
        if off + n > self.fits:
            self._reserve(off + n)
        dest = off + 1 - (offset - start)
        self.seen, self.n = view.seen, n
        self.off = off
        self.length = off + n
        if n == 1 and keep == 0 and start == offset:  # a live bar appended: its values as numbers
            return (off, view.seen - off, off - offset + 1, dest, *[newest_of(view) for newest_of in self.newest])
        blobs = [array_of(view)[start:].tobytes() for array_of in self.arrays]
        self._load_chunk(off, view.seen - off, off - offset + 1, keep, length, dest, *blobs)
        return ()

    def _reserve(self, size: int = 0) -> None:
        """Reserve sandbox memory for the arrays at ``size`` bars. The reserve
        grows only, at least doubling up to ``capacity`` bars (the arrays
        grow a bar at a time live, and a lupa call per bar is not free)."""
        size = max(size, len(self.view.ts), self.length)
        per_bar = len(self.arrays) * _ARRAY_BYTES + 8
        if size * per_bar > self.reserved:
            budget = max(size, min(2 * self.fits, self.capacity)) * per_bar
            self.sandbox.reserve(budget)
            self.reserved = budget
        self.fits = self.reserved // per_bar  # the bars the reserve holds with these arrays

    def bar_at(self, ts: int) -> int:
        """The array index (1-based, as Lua holds it) of the last bar at or before ``ts``."""
        return int(np.searchsorted(self.view.ts, ts, "right")) + self.off - self.view.offset


def _output(tracked: TrackedIndicator, k: int) -> tuple[ArrayOf, NewestOf]:
    """Read output ``k`` of an indicator the view tracks: its array, its newest value."""
    return (lambda view: tracked.outputs[k]), (lambda view: tracked.latest[k])


def to_lua(lua: Any, value: Any) -> Any:
    """Config values as plain Lua values (never Python objects)."""
    if isinstance(value, dict):
        return lua.table_from({str(k): to_lua(lua, v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return lua.table_from([to_lua(lua, v) for v in value])
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def from_lua(value: Any, depth: int = 0) -> Any:
    """A Lua value as JSON-able Python: tables with keys 1..n become lists,
    other tables dicts with string keys; what JSON cannot hold (functions,
    userdata, tables nested past 32 levels) is left out."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if lua54.lua_type(value) != "table" or depth > 32:
        return None
    items = list(value.items())
    keys = [k for k, _ in items]
    if items and all(type(k) is int for k in keys) and sorted(keys) == list(range(1, len(items) + 1)):
        return [from_lua(v, depth + 1) for _, v in sorted(items, key=lambda kv: kv[0])]
    out = {}
    for k, v in items:
        converted = from_lua(v, depth + 1)
        if converted is not None or v is None:
            out[str(k)] = converted
    return out
